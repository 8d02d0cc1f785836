package pas

import (
	"os"
	"testing"
	"time"

	"github.com/priora/priora/bench"
	"github.com/priora/priora/coverage"
)

// BenchmarkSubmitCriteria is what criteria add to a $submit: the request
// Bundle read for FHIRPath and the lumbar-MRI policy's three criteria
// evaluated for its item (testdata/policies/mri-lumbar-met.json, approved
// by its criteria). BenchmarkSubmitNoCriteria decides the same item with
// the request unread, as a rule without criteria would. The difference is
// the criteria's cost (target: at most 1 ms).
func BenchmarkSubmitCriteria(b *testing.B)   { benchCriteria(b, true) }
func BenchmarkSubmitNoCriteria(b *testing.B) { benchCriteria(b, false) }

func benchCriteria(b *testing.B, withCriteria bool) {
	raw, err := os.ReadFile("../testdata/policies/mri-lumbar-met.json")
	if err != nil {
		b.Fatal(err)
	}
	rules, _ := coverage.Sample()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	cpu := bench.ProcessCPU()
	for b.Loop() {
		req, err := parseRequest(newSource(raw))
		if err != nil {
			b.Fatal(err)
		}
		req.resolveParties()
		if withCriteria {
			cr, err := req.claimRequest()
			if err != nil {
				b.Fatal(err)
			}
			req.criteria = cr
		}
		for _, it := range req.claim.Item {
			d := decide(rules, req.serviceContext(), req, it, "PA1", now)
			if withCriteria && d.Action != "approve" {
				b.Fatalf("the met example was not approved: %+v", d)
			}
		}
	}
	b.ReportMetric(float64(bench.ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op")
}
