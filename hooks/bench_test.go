package hooks

import (
	"context"
	"strings"
	"testing"

	"github.com/priora/priora/bench"
	"github.com/priora/priora/coverage"
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
	cpu := bench.ProcessCPU()
	for b.Loop() {
		if _, err := s.Call(ctx, "order-sign-crd", Caller{}, body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(bench.ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op")
}

// BenchmarkOrderSignCriteria is BenchmarkOrderSign with three FHIRPath
// criteria on the rule of the example's oxygen order (age, sex, the
// order's code): the cost of criteria in a hook call. Compare the two
// (target: at most 20 % more CPU).
func BenchmarkOrderSignCriteria(b *testing.B) {
	yaml := strings.Replace(string(coverage.SampleYAML()), `    description: Hospital beds and home oxygen need review
`, `    description: Hospital beds and home oxygen need review
    criteria:
      all:
        - {id: adult, description: Adult, expression: "%patient.birthDate <= %today - 18 years"}
        - {id: sex, description: Sex recorded, expression: "%patient.gender in ('female' | 'male' | 'other')"}
        - {id: oxygen, description: Oxygen ordered, expression: "%item.code.coding.where(code = 'E0431').exists()"}
`, 1)
	rules, err := coverage.Parse([]byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	s, _ := newTestService(b, func(c *Config) { c.Store = nil; c.Rules = func() *coverage.Rules { return rules } })
	body := fixture(b, "ig/CRDServiceRequest.json")
	ctx := context.Background()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu := bench.ProcessCPU()
	for b.Loop() {
		if _, err := s.Call(ctx, "order-sign-crd", Caller{}, body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(bench.ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op")
}
