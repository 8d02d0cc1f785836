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

// resubmit is an example sent again as a new request (new Bundle and Claim
// identifiers) for the same member.
func resubmit(t *testing.T, body []byte, n string) []byte {
	return edit(t, body, func(b map[string]any) {
		b["identifier"].(map[string]any)["value"] = "again-" + n
		claim(b)["identifier"].([]any)[0].(map[string]any)["value"] = "again-trace-" + n
	})
}

// taskCriteria returns an item's criteria findings from the review API.
func taskCriteria(t *testing.T, e *testenv.Env, number string) map[string]string {
	t.Helper()
	r := e.Get("/review/tasks/" + strings.TrimSuffix(number, "-1"))
	var task struct {
		Items []struct {
			Decision struct {
				Criteria []struct{ ID, Finding, Detail string }
			} `json:"decision"`
		} `json:"items"`
	}
	if err := json.Unmarshal(r.Body, &task); err != nil || len(task.Items) == 0 {
		t.Fatalf("task %s: %d %s", number, r.Status, r.Body)
	}
	out := map[string]string{}
	for _, c := range task.Items[0].Decision.Criteria {
		out[c.ID] = c.Finding
	}
	return out
}

// Frequency limits count the member's earlier approved authorizations: a
// second screening mammogram within 11 months is denied (administrative
// criterion), a second sleep study within a year goes to review.
func TestFrequencyLimitAcrossSubmissions(t *testing.T) {
	e := testenv.Start(t, testenv.WithNow(func() time.Time { return examplesToday }))
	for _, tc := range []struct {
		file, second, criterion string
	}{
		{"policies/screening-mammography-met.json", "A3", "every-11-months"},
		{"policies/polysomnography-met.json", "A4", "once-a-year"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			body := testenv.Fixture(t, tc.file)
			r := e.Post(submitPath, body)
			if _, items := checkPASResponse(t, r.Body); items[1].ReviewAction != "A1" {
				t.Fatalf("first request: %s, want A1: %s", items[1].ReviewAction, r.Body)
			}
			r = e.Post(submitPath, resubmit(t, body, tc.criterion))
			_, items := checkPASResponse(t, r.Body)
			if items[1].ReviewAction != tc.second {
				t.Fatalf("second request: %s, want %s: %s", items[1].ReviewAction, tc.second, processNotes(t, r.Body))
			}
			if notes := processNotes(t, r.Body); !strings.Contains(notes, "Not met") || !strings.Contains(notes, "("+tc.criterion+")") {
				t.Errorf("processNote does not say the limit is not met:\n%s", notes)
			}
			if tc.second == "A4" {
				if got := taskCriteria(t, e, items[1].Number)[tc.criterion]; got != "not-met" {
					t.Errorf("%s = %q on the task, want not-met", tc.criterion, got)
				}
			}
		})
	}
}

// A rule's gold-card NPIs apply on $submit directly: a request from the
// gold-carded sleep clinic is approved without its criteria, one from
// another provider is decided by them.
func TestGoldCardAtSubmit(t *testing.T) {
	e := testenv.Start(t, testenv.WithNow(func() time.Time { return examplesToday }))
	body := testenv.Fixture(t, "policies/cpap-osa-unknown.json")
	provider := func(npi string) func(map[string]any) {
		return func(b map[string]any) {
			for _, en := range b["entry"].([]any) {
				if r := en.(map[string]any)["resource"].(map[string]any); r["id"] == "UMOExample" {
					r["identifier"] = []any{map[string]any{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}}
				}
			}
		}
	}
	r := e.Post(submitPath, edit(t, body, provider("1122334455")))
	if _, items := checkPASResponse(t, r.Body); items[1].ReviewAction != "A1" {
		t.Fatalf("gold-carded provider: %s, want A1: %s", items[1].ReviewAction, r.Body)
	}
	if notes := processNotes(t, r.Body); !strings.Contains(notes, "gold-carded") {
		t.Errorf("processNote does not say why: %q", notes)
	}
	r = e.Post(submitPath, resubmit(t, edit(t, body, provider("1234567893")), "other"))
	if _, items := checkPASResponse(t, r.Body); items[1].ReviewAction != "A4" {
		t.Fatalf("other provider: %s, want A4", items[1].ReviewAction)
	}
}
