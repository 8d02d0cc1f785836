package server_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/priora/priora/internal/testenv"
)

// examplesToday is the date the sample policies' examples are written for
// (testdata/policies; coverage/policies_test.go).
var examplesToday = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

type policyExample struct {
	Policy, Name, File, Action string
	Findings                   map[string]string
	RequestInfo                []string
}

func policyExamples(t *testing.T) []policyExample {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.Root(), "testdata/policies/examples.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exs []policyExample
	if err := json.Unmarshal(b, &exs); err != nil {
		t.Fatal(err)
	}
	return exs
}

// processNotes returns the ClaimResponse's processNote texts.
func processNotes(t *testing.T, body []byte) string {
	t.Helper()
	var b struct {
		Entry []struct {
			Resource struct {
				ProcessNote []struct{ Text string } `json:"processNote"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil || len(b.Entry) == 0 {
		t.Fatalf("response: %v", err)
	}
	var s []string
	for _, n := range b.Entry[0].Resource.ProcessNote {
		s = append(s, n.Text)
	}
	return strings.Join(s, "\n")
}

// Every sample policy's example requests are decided as documented over
// HTTP: the review action, the criteria explained in processNote, the
// criteria and rules version on the review task.
func TestSamplePolicyExamplesOverHTTP(t *testing.T) {
	e := testenv.Start(t, testenv.WithNow(func() time.Time { return examplesToday }))
	want := map[string]string{"approve": "A1", "pend": "A4", "deny": "A3"}
	for _, ex := range policyExamples(t) {
		t.Run(ex.Policy+"/"+ex.Name, func(t *testing.T) {
			r := e.Post(submitPath, testenv.Fixture(t, "policies/"+ex.File))
			if r.Status != http.StatusOK {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			_, items := checkPASResponse(t, r.Body)
			if got := items[1].ReviewAction; got != want[ex.Action] {
				t.Errorf("item 1: %s, want %s (%s)", got, want[ex.Action], ex.Action)
			}
			notes := processNotes(t, r.Body)
			for id, f := range ex.Findings {
				if !strings.Contains(notes, "("+id+")") {
					t.Errorf("processNote does not explain criterion %s (%s):\n%s", id, f, notes)
				}
			}
			if ex.Action != "pend" {
				return
			}
			var task struct {
				Items []struct {
					Decision struct {
						RulesVersion string `json:"rulesVersion"`
						RequestInfo  []string
						Criteria     []struct{ ID, Finding string }
					} `json:"decision"`
				} `json:"items"`
			}
			id := strings.TrimSuffix(items[1].Number, "-1")
			tr := e.Get("/review/tasks/" + id)
			if tr.Status != http.StatusOK {
				t.Fatalf("task %s: %d %s", id, tr.Status, tr.Body)
			}
			if err := json.Unmarshal(tr.Body, &task); err != nil || len(task.Items) == 0 {
				t.Fatalf("task: %v %s", err, tr.Body)
			}
			d := task.Items[0].Decision
			if !strings.HasPrefix(d.RulesVersion, "2026.12-sample@") {
				t.Errorf("rulesVersion %q", d.RulesVersion)
			}
			got := map[string]string{}
			for _, c := range d.Criteria {
				got[c.ID] = c.Finding
			}
			for id, f := range ex.Findings {
				if got[id] != f {
					t.Errorf("task criterion %s: %q, want %s", id, got[id], f)
				}
			}
			for _, code := range ex.RequestInfo {
				if !strings.Contains(strings.Join(d.RequestInfo, ","), code) {
					t.Errorf("task requestInfo %v lacks %s", d.RequestInfo, code)
				}
			}
		})
	}
}

