package hooks

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/priora/priora/coverage"
)

// TestCriteriaReadCoverage: an order-sign call parses the Coverage for
// criteria only when some criterion reads %coverage — and then it does.
// With the Coverage read, a criterion on its status is met and the answer
// differs from the one for a criterion whose data is absent (unknown); had
// the Coverage not been read, both would be unknown and the answers equal.
func TestCriteriaReadCoverage(t *testing.T) {
	if sample, _ := coverage.Sample(); sample.UsesVariable("coverage") {
		t.Errorf("no sample criterion reads %%coverage, but UsesVariable says one does")
	}
	ids := regexp.MustCompile(`[0-9a-zA-Z]*[0-9a-f]{8}-[0-9a-f-]{27}|"(crd|PA)-?[0-9a-f]{8,}(-[0-9]+)?"`)
	answer := func(expr string) string {
		yaml := strings.Replace(string(coverage.SampleYAML()), `    description: Hospital beds and home oxygen need review
`, `    description: Hospital beds and home oxygen need review
    criteria:
      all:
        - {id: active, description: Coverage active, expression: "`+expr+`"}
`, 1)
		rules, err := coverage.Parse([]byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		if !rules.UsesVariable("coverage") {
			t.Errorf("UsesVariable(coverage) is false with %s", expr)
		}
		s, _ := newTestService(t, func(c *Config) { c.Store = nil; c.Rules = func() *coverage.Rules { return rules } })
		resp, err := s.Call(context.Background(), "order-sign-crd", Caller{}, fixture(t, "ig/CRDServiceRequest.json"))
		if err != nil {
			t.Fatal(err)
		}
		return ids.ReplaceAllString(string(resp.Body), "ID")
	}
	met, unknown := answer("%coverage.status = 'active'"), answer("%coverage.extension('urn:none').value = 'x'")
	if again := answer("%coverage.status = 'active'"); again != met {
		a, b := again, met
		for i := range a {
			if i >= len(b) || a[i] != b[i] {
				t.Fatalf("two equal calls answer differently at %d: %.200s | %.200s", i, a[max(0, i-50):], b[max(0, i-50):])
			}
		}
	}
	if met == unknown {
		t.Errorf("a met %%coverage criterion answers like an unknown one: the Coverage was not read")
	}
}
