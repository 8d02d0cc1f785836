package server_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/priora/priora/internal/testenv"
)

// BenchmarkSubmitHTTP is the whole $submit over HTTP on loopback: intake,
// decisions, the durable write to the embedded store, and the response.
// Each iteration submits a new request (a fresh Bundle.identifier).
func BenchmarkSubmitHTTP(b *testing.B) {
	e := testenv.Start(b)
	base := testenv.Fixture(b, "pas/kit/approval_pa_submit_request_payload.json")
	marker := []byte(`"value": "A12345"`)
	bodies := make([][]byte, 0, 1024)
	for i := 0; i < 1024; i++ {
		bodies = append(bodies, replaceOnce(base, marker, []byte(fmt.Sprintf(`"value": "BENCH-%d"`, i))))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		body := bodies[i%len(bodies)]
		if i >= len(bodies) {
			body = replaceOnce(base, marker, []byte(fmt.Sprintf(`"value": "BENCH-%d"`, i)))
		}
		i++
		if r := e.Post(submitPath, body); r.Status != 200 {
			b.Fatalf("status %d: %s", r.Status, r.Body)
		}
	}
}

func replaceOnce(s, old, new []byte) []byte {
	out := make([]byte, 0, len(s)+len(new))
	for i := 0; i+len(old) <= len(s); i++ {
		if string(s[i:i+len(old)]) == string(old) {
			out = append(out, s[:i]...)
			out = append(out, new...)
			return append(out, s[i+len(old):]...)
		}
	}
	panic("marker not found")
}

// BenchmarkOrderSignHTTP is a whole CRD order-sign over HTTP on loopback:
// the IG example with its full prefetch and a fresh hookInstance, the
// coverage assertions and the call record stored, the audit record
// written. It runs several calls in parallel, as EHRs do, so that the
// store's group commits show.
func BenchmarkOrderSignHTTP(b *testing.B) {
	e := testenv.Start(b)
	base := testenv.Fixture(b, "crd/ig/CRDServiceRequest.json")
	marker := []byte(`"hookInstance": "d5a80646-7ef5-4edf-ade9-72407ca28c76"`)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf(`"hookInstance": "d5a80646-7ef5-4edf-ade9-%012d"`, n.Add(1))
			if r := e.Post("/cds-services/order-sign-crd", replaceOnce(base, marker, []byte(id))); r.Status != 200 {
				b.Errorf("status %d: %s", r.Status, r.Body)
				return
			}
		}
	})
}

// BenchmarkSubmitHTTPParallel is BenchmarkSubmitHTTP with several
// submissions in flight, as a payer's bursts are.
func BenchmarkSubmitHTTPParallel(b *testing.B) {
	e := testenv.Start(b, testenv.WithoutResponseChecks())
	base := testenv.Fixture(b, "pas/kit/approval_pa_submit_request_payload.json")
	marker := []byte(`"value": "A12345"`)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(benchParallelism / 4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := replaceOnce(base, marker, []byte(fmt.Sprintf(`"value": "BENCHP-%d"`, n.Add(1))))
			if r := e.Post(submitPath, body); r.Status != 200 {
				b.Errorf("status %d: %s", r.Status, r.Body)
				return
			}
		}
	})
}

// benchParallelism is goroutines per CPU in the parallel benchmarks: as many
// calls in flight as a busy EHR integration engine keeps (64 on 2 CPUs).
const benchParallelism = 32
