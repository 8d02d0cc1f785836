package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/priora/priora/internal/testenv"
)

// pendedRequest is the kit approval payload with both items asking for a
// total knee replacement, which the sample rules pend for review.
func pendedRequest(t *testing.T) []byte {
	return edit(t, testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json"), func(b map[string]any) {
		for _, it := range claim(b)["item"].([]any) {
			it.(map[string]any)["productOrService"] = map[string]any{"coding": []any{
				map[string]any{"system": "http://www.ama-assn.org/go/cpt", "code": "27447", "display": "Total knee arthroplasty"}}}
		}
	})
}

type taskList struct {
	Tasks []struct {
		ID          string `json:"id"`
		Status      string `json:"status"`
		PendedItems int    `json:"pendedItems"`
		Patient     string `json:"patient"`
		Overdue     bool   `json:"overdue"`
	} `json:"tasks"`
}

func queue(t *testing.T, e *testenv.Env, query string) taskList {
	t.Helper()
	r := e.Get("/review/tasks" + query)
	if r.Status != 200 {
		t.Fatalf("queue: %d %s", r.Status, r.Body)
	}
	var l taskList
	if err := json.Unmarshal(r.Body, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestReviewWorkflow(t *testing.T) {
	e := testenv.Start(t)
	r := e.Post(submitPath, pendedRequest(t))
	if r.Status != 200 {
		t.Fatalf("submit: %d %s", r.Status, r.Body)
	}
	_, items := checkPASResponse(t, r.Body)
	if items[1].ReviewAction != "A4" || items[2].ReviewAction != "A4" {
		t.Fatalf("items = %+v, want both pended", items)
	}

	open := queue(t, e, "")
	if len(open.Tasks) != 1 || open.Tasks[0].PendedItems != 2 || open.Tasks[0].Patient == "" {
		t.Fatalf("open queue = %+v", open)
	}
	id := open.Tasks[0].ID

	detail := e.Get("/review/tasks/" + id)
	if detail.Status != 200 {
		t.Fatalf("task: %d %s", detail.Status, detail.Body)
	}
	var task struct {
		Items []struct {
			Sequence int `json:"sequence"`
			Decision struct {
				Action string `json:"action"`
				RuleID string `json:"ruleId"`
				Reason string `json:"reason"`
			} `json:"decision"`
		} `json:"items"`
		SupportingInfo []struct {
			Type string `json:"type"`
		} `json:"supportingInfo"`
		Request json.RawMessage `json:"request"`
	}
	if err := json.Unmarshal(detail.Body, &task); err != nil {
		t.Fatal(err)
	}
	if len(task.Items) != 2 || task.Items[0].Decision.RuleID != "joint-replacement" || task.Items[0].Decision.Reason == "" {
		t.Errorf("task items = %+v, want the rule that fired and why", task.Items)
	}
	if len(task.SupportingInfo) == 0 || task.SupportingInfo[0].Type != "DocumentReference" || len(task.Request) == 0 {
		t.Errorf("task lacks supporting information or the request: %+v", task.SupportingInfo)
	}

	decision := `{"reviewer": {"npi": "1234567893", "name": "Dr. Rev", "role": "physician"},
		"items": [{"sequence": 1, "action": "approve"},
		          {"sequence": 2, "action": "deny", "reasonCode": "0U", "note": "Conservative therapy not documented."}]}`
	d := e.Post("/review/tasks/"+id+"/decision", []byte(decision), "Content-Type", "application/json")
	if d.Status != 200 {
		t.Fatalf("decision: %d %s", d.Status, d.Body)
	}
	cr, items := checkPASResponse(t, d.Body)
	if items[1].ReviewAction != "A1" || items[2].ReviewAction != "A3" {
		t.Errorf("after review items = %+v", items)
	}
	if !strings.Contains(string(d.Body), "extension-claimResponseReviewer") || !strings.Contains(string(d.Body), `"value":"1234567893"`) {
		t.Errorf("response does not record the human reviewer")
	}
	if cr["outcome"] != "complete" {
		t.Errorf("outcome %v", cr["outcome"])
	}
	if n := len(queue(t, e, "").Tasks); n != 0 {
		t.Errorf("%d open tasks after the decision, want 0", n)
	}
	if done := queue(t, e, "?status=complete"); len(done.Tasks) != 1 || done.Tasks[0].ID != id {
		t.Errorf("complete queue = %+v", done)
	}
	// Deciding again is a conflict: nothing is pended any more.
	if again := e.Post("/review/tasks/"+id+"/decision", []byte(decision), "Content-Type", "application/json"); again.Status != http.StatusConflict {
		t.Errorf("second decision status %d, want 409", again.Status)
	}
	// $inquire now answers the reviewed response.
	inq := inquiryResults(t, e, testenv.Fixture(t, "pas/kit/must_support_pa_inquire_request_payload.1.json"))
	if len(inq) != 1 || inq[0][2].ReviewAction != "A3" {
		t.Errorf("inquiry after review = %+v", inq)
	}
}

func TestReviewRejects(t *testing.T) {
	e := testenv.Start(t)
	e.Post(submitPath, pendedRequest(t))
	id := queue(t, e, "").Tasks[0].ID
	tests := []struct {
		name, path, body string
		status           int
		expression       string
	}{
		{"unknown task", "/review/tasks/PA0000/decision", `{"reviewer":{"name":"x"},"items":[{"sequence":1,"action":"approve"}]}`, 404, ""},
		{"path traversal", "/review/tasks/..%2F..%2Fetc/decision", `{}`, 404, ""},
		{"operator in id", "/review/tasks/$ne/decision", `{}`, 404, ""},
		{"no reviewer", "/review/tasks/" + id + "/decision", `{"items":[{"sequence":1,"action":"approve"}]}`, 400, "reviewer"},
		{"bad NPI", "/review/tasks/" + id + "/decision", `{"reviewer":{"npi":"12"},"items":[{"sequence":1,"action":"approve"}]}`, 400, "reviewer.npi"},
		{"unknown action", "/review/tasks/" + id + "/decision", `{"reviewer":{"name":"x"},"items":[{"sequence":1,"action":"maybe"}]}`, 400, "items[0].action"},
		{"deny without reason", "/review/tasks/" + id + "/decision", `{"reviewer":{"name":"x","role":"physician"},"items":[{"sequence":1,"action":"deny"}]}`, 400, "items[0].reasonCode"},
		{"modify without quantity", "/review/tasks/" + id + "/decision", `{"reviewer":{"name":"x"},"items":[{"sequence":1,"action":"modify"}]}`, 400, "items[0].quantity"},
		{"unknown item", "/review/tasks/" + id + "/decision", `{"reviewer":{"name":"x"},"items":[{"sequence":9,"action":"approve"}]}`, 400, "items[0].sequence"},
		{"unknown field", "/review/tasks/" + id + "/decision", `{"reviewer":{"name":"x"},"items":[],"approveAll":true}`, 400, ""},
		{"operator injection in a value", "/review/tasks/" + id + "/decision", `{"reviewer":{"name":{"$ne":""}},"items":[]}`, 400, ""},
		{"bad status filter", "/review/tasks?status=%7B%22%24ne%22%3A1%7D", "", 400, "status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r *testenv.Response
			if tt.body == "" {
				r = e.With(t).Get(tt.path)
			} else {
				r = e.With(t).Post(tt.path, []byte(tt.body), "Content-Type", "application/json")
			}
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.status, r.Body)
			}
			checkOutcome(t, r.Body, tt.expression, "")
		})
	}
	if n := queue(t, e, "").Tasks[0].PendedItems; n != 2 {
		t.Errorf("rejected decisions changed the task: %d pended items", n)
	}
}

func TestDelayedRuleFinishesPend(t *testing.T) {
	rules := `
version: 1
rules:
  - id: auto
    match: {codes: [{system: "https://codesystem.x12.org/005010/1365", codes: ["3"]}]}
    decision: {action: pend, after: 1s, then: approve, requestInfo: ["11506-3"]}
`
	e := testenv.Start(t, testenv.WithRules(rules))
	r := e.Post(submitPath, testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json"))
	cr, items := checkPASResponse(t, r.Body)
	if items[1].ReviewAction != "A4" {
		t.Fatalf("item 1 = %s, want A4", items[1].ReviewAction)
	}
	// The pend asks for a progress note: a PAS CommunicationRequest per item.
	if refs, _ := cr["communicationRequest"].([]any); len(refs) != 2 {
		t.Errorf("communicationRequest = %v, want one per pended item", cr["communicationRequest"])
	}
	if !strings.Contains(string(r.Body), `"contentString":"11506-3"`) {
		t.Errorf("no CommunicationRequest for LOINC 11506-3 in the response")
	}
	testenv.WaitFor(t, 15*time.Second, "the delayed rule to finish the pended request", func() bool {
		return len(queue(t, e, "?status=complete").Tasks) == 1
	})
	inq := inquiryResults(t, e, testenv.Fixture(t, "pas/kit/must_support_pa_inquire_request_payload.1.json"))
	if len(inq) != 1 || inq[0][1].ReviewAction != "A1" || inq[0][2].ReviewAction != "A1" {
		t.Errorf("after the delay = %+v, want both approved", inq)
	}
}
