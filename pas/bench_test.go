package pas

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/priora/priora/bench"
	"github.com/priora/priora/coverage"
	"github.com/priora/priora/fhir"
	"github.com/priora/priora/profiles"
	"github.com/priora/priora/store"
)

func benchBundle(b *testing.B) []byte {
	raw, err := os.ReadFile("../testdata/pas/kit/approval_pa_submit_request_payload.json")
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkParse is request intake: google/fhir base-R4 check plus the PAS
// Bundle rules (references, sequences, fullUrls).
func BenchmarkParse(b *testing.B) {
	raw := benchBundle(b)
	p, err := fhir.NewParser()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Check(raw); err != nil {
			b.Fatal(err)
		}
		if _, err := parseRequest(newSource(raw)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseBaseR4 is the google/fhir part of intake alone.
func BenchmarkParseBaseR4(b *testing.B) {
	raw := benchBundle(b)
	p, _ := fhir.NewParser()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Check(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecide applies the sample coverage rules to every item.
func BenchmarkDecide(b *testing.B) {
	req, err := parseRequest(newSource(benchBundle(b)))
	if err != nil {
		b.Fatal(err)
	}
	req.resolveParties()
	rules, _ := coverage.Sample()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		svc := req.serviceContext()
		for _, it := range req.claim.Item {
			_ = decide(rules, svc, req, it, "PA1", now)
		}
	}
}

// BenchmarkBuildResponse renders the PAS Response Bundle.
func BenchmarkBuildResponse(b *testing.B) {
	req, err := parseRequest(newSource(benchBundle(b)))
	if err != nil {
		b.Fatal(err)
	}
	req.resolveParties()
	rules, _ := coverage.Sample()
	now := time.Now()
	a := &store.Authorization{ID: "PA0123456789abcdef0123"}
	(&Service{}).index(a, req)
	for i, it := range req.claim.Item {
		rec := itemRecord(it, req.rawItems[i])
		rec.Decision = decide(rules, req.serviceContext(), req, it, a.ID, now)
		a.Items = append(a.Items, rec)
	}
	in := responseInput{auth: a, claim: req.claim, claimItems: req.rawItems, claimFullURL: req.claimFullURL(), bundleID: req.bundle.Identifier, now: now, number: 1, authDays: 180}
	b.ReportAllocs()
	cpu := bench.ProcessCPU()
	for b.Loop() {
		if _, _, err := buildResponse(in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(bench.ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op")
}

// BenchmarkIntake is all of $submit's intake on the 47 KB kit Bundle: the
// google/fhir base-R4 gate, the PAS Bundle rules and profile validation
// (checkRequest, as the server runs it). cpu-ns/op counts the validation
// goroutine too.
func BenchmarkIntake(b *testing.B) {
	raw := benchBundle(b)
	p, err := fhir.NewParser()
	if err != nil {
		b.Fatal(err)
	}
	reg, err := profiles.Load()
	if err != nil {
		b.Fatal(err)
	}
	validate := ProfileValidator(reg.NewValidator(profiles.Options{}))
	ctx := context.Background()
	if _, err := checkRequest(ctx, p, validate, raw, ProfileRequestBundle); err != nil {
		b.Fatal(err) // also compiles the definitions it needs
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	cpu := bench.ProcessCPU()
	for b.Loop() {
		if _, err := checkRequest(ctx, p, validate, raw, ProfileRequestBundle); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(bench.ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op")
}
