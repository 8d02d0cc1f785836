package hooks

import (
	"context"
	"testing"
)

// BenchmarkOrderSign answers the CRD IG's order-sign example (two orders,
// full standard prefetch, configuration, requestedVersion): decoding,
// coverage rules, coverage-information system actions and cards. No EHR
// query is needed and nothing is stored, so it measures the service itself.
func BenchmarkOrderSign(b *testing.B) {
	s, _ := newTestService(b, func(c *Config) { c.Store = nil })
	body := fixture(b, "ig/CRDServiceRequest.json")
	ctx := context.Background()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Call(ctx, "order-sign-crd", Caller{}, body); err != nil {
			b.Fatal(err)
		}
	}
}
