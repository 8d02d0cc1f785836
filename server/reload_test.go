package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/priora/priora/coverage"
	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
)

// withRulesFile serves the rules in a file the test may rewrite.
func withRulesFile(t *testing.T, yaml []byte) (testenv.Option, string) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, yaml, 0o644); err != nil {
		t.Fatal(err)
	}
	return testenv.WithConfig(func(c *app.Config) { c.RulesFile = path }), path
}

// A reload while requests stream in fails none of them; each is decided
// whole by one rule set. An invalid file is refused with 422, every problem
// on its line, and the running rules stay.
func TestRulesReload(t *testing.T) {
	opt, path := withRulesFile(t, coverage.SampleYAML())
	e := testenv.Start(t, opt, testenv.WithNow(func() time.Time { return examplesToday }))
	status := func() map[string]any { return e.Get("/admin/rules").JSON(t) }
	before := status()["version"].(string)

	body := testenv.Fixture(t, "policies/mri-lumbar-met.json")
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				r := e.Post(submitPath, resubmit(t, body, "load-"+string(rune('a'+w))+"-"+string(rune('a'+i))))
				if r.Status != http.StatusOK {
					errs <- string(r.Body)
				}
			}
		}()
	}
	for i := range 5 {
		label := []byte(`label: "reload-` + string(rune('a'+i)) + `"`)
		if err := os.WriteFile(path, bytes.Replace(coverage.SampleYAML(), []byte(`label: "2026.12-sample"`), label, 1), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := e.Post("/admin/rules/reload", nil); r.Status != http.StatusOK {
			t.Fatalf("reload: %d %s", r.Status, r.Body)
		}
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Errorf("a request failed during reloads: %s", msg)
	}
	after := status()
	if v := after["version"].(string); !strings.HasPrefix(v, "reload-e@") || v == before {
		t.Errorf("version %q after reloads (was %q)", v, before)
	}

	bad := append(coverage.SampleYAML(), []byte(`
  - id: bad-policy
    match: {codes: [{system: "http://www.ama-assn.org/go/cpt", codes: ["99999"]}]}
    criteria:
      all:
        - {id: broken, description: Does not compile, expression: "%claim.item.where("}
    decision: {action: deny, reasonCode: "ZZ"}
    crd: {goldCard: ["1234567890"]}
    colour: blue
`)...)
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.Post("/admin/rules/reload", nil)
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("invalid reload: %d %s", r.Status, r.Body)
	}
	var oo struct {
		Issue []struct{ Diagnostics string } `json:"issue"`
	}
	_ = json.Unmarshal(r.Body, &oo)
	if len(oo.Issue) == 0 || !strings.Contains(string(r.Body), "line ") || !strings.Contains(string(r.Body), "colour") {
		t.Errorf("the refusal does not say what and where: %s", r.Body)
	}
	if v := status()["version"].(string); v != after["version"] {
		t.Errorf("the running rules changed after an invalid reload: %s", v)
	}
	if st := status(); st["failedReloads"].(float64) != 1 || st["lastError"] == "" {
		t.Errorf("status does not record the failure: %v", st)
	}
	if r := e.Post(submitPath, resubmit(t, body, "after-bad")); r.Status != http.StatusOK {
		t.Errorf("a request after the refused reload: %d", r.Status)
	}
}
