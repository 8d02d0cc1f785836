package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/priora/priora/internal/testenv"
)

// submitPended posts the knee request both of whose items the sample rules
// pend, and returns the review task id.
func submitPended(t *testing.T, e *testenv.Env) string {
	t.Helper()
	r := e.Post(submitPath, pendedRequest(t))
	if r.Status != http.StatusOK {
		t.Fatalf("submit: %d %s", r.Status, r.Body)
	}
	return testenv.AuthorizationID(t, r.Body)
}

func postDecision(t *testing.T, e *testenv.Env, id, body string) *testenv.Response {
	t.Helper()
	return e.With(t).Post("/review/tasks/"+id+"/decision", []byte(body), "Content-Type", "application/json")
}

// reviewerSpecialty is the reviewerSpecialty of the response's
// claimResponseReviewer extension, as JSON ("" when absent).
func reviewerSpecialty(t *testing.T, bundle []byte) string {
	t.Helper()
	var b struct {
		Entry []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
				Extension    []struct {
					URL       string `json:"url"`
					Extension []struct {
						URL                  string          `json:"url"`
						ValueCodeableConcept json.RawMessage `json:"valueCodeableConcept"`
					} `json:"extension"`
				} `json:"extension"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	for _, e := range b.Entry {
		if e.Resource.ResourceType != "ClaimResponse" {
			continue
		}
		for _, x := range e.Resource.Extension {
			if !strings.HasSuffix(x.URL, "extension-claimResponseReviewer") {
				continue
			}
			for _, s := range x.Extension {
				if s.URL == "reviewerSpecialty" {
					return string(s.ValueCodeableConcept)
				}
			}
		}
	}
	return ""
}

// A nurse (or a reviewer named without a role) cannot deny for medical
// necessity through the review API; a physician can, and the response
// says a physician reviewed it.
func TestReviewRoles(t *testing.T) {
	e := testenv.Start(t)
	id := submitPended(t, e)
	deny := `{"sequence": 2, "action": "deny", "reasonCode": "0U", "note": "Conservative therapy not documented."}`
	for _, reviewer := range []string{`{"name": "Ana Rivera, RN", "role": "nurse"}`, `{"name": "No Role Given"}`} {
		r := postDecision(t, e, id, `{"reviewer": `+reviewer+`, "items": [`+deny+`]}`)
		if r.Status != http.StatusForbidden {
			t.Fatalf("denial by %s: %d, want 403: %s", reviewer, r.Status, r.Body)
		}
		checkOutcome(t, r.Body, "items[0].action", "physician")
	}
	r := postDecision(t, e, id, `{"reviewer": {"name": "x", "role": "admin"}, "items": [{"sequence": 1, "action": "approve"}]}`)
	if r.Status != http.StatusForbidden {
		t.Errorf("approval by an administrator: %d, want 403", r.Status)
	}
	r = postDecision(t, e, id, `{"reviewer": {"name": "x", "role": "surgeon"}, "items": [{"sequence": 1, "action": "approve"}]}`)
	if r.Status != http.StatusBadRequest {
		t.Errorf("unknown role: %d, want 400", r.Status)
	}
	if n := queue(t, e, "").Tasks[0].PendedItems; n != 2 {
		t.Fatalf("refused decisions changed the task: %d pended items", n)
	}
	// A nurse approves.
	r = postDecision(t, e, id, `{"reviewer": {"name": "Ana Rivera, RN", "role": "nurse"}, "items": [{"sequence": 1, "action": "approve"}]}`)
	if r.Status != http.StatusOK {
		t.Fatalf("approval by a nurse: %d %s", r.Status, r.Body)
	}
	if sp := reviewerSpecialty(t, r.Body); !strings.Contains(sp, "163W00000X") {
		t.Errorf("reviewerSpecialty after a nurse's decision = %s, want NUCC 163W00000X", sp)
	}
	r = postDecision(t, e, id, `{"reviewer": {"npi": "1245319599", "name": "Chidi Okafor, MD", "role": "physician"}, "items": [`+deny+`]}`)
	if r.Status != http.StatusOK {
		t.Fatalf("denial by a physician: %d %s", r.Status, r.Body)
	}
	_, items := checkPASResponse(t, r.Body)
	if items[1].ReviewAction != "A1" || items[2].ReviewAction != "A3" {
		t.Errorf("items = %+v, want A1 and A3", items)
	}
	if sp := reviewerSpecialty(t, r.Body); !strings.Contains(sp, "Physician") {
		t.Errorf("reviewerSpecialty after a physician's denial = %s", sp)
	}
	task := e.Get("/review/tasks/" + id)
	if !strings.Contains(string(task.Body), `"reviewerRole":"physician"`) || !strings.Contains(string(task.Body), `"reviewerRole":"nurse"`) {
		t.Errorf("the task does not record the reviewers' roles: %.2000s", task.Body)
	}
}

// A modify cannot authorize more units or a longer period than requested;
// a denial needs both a reason code and a note to the provider; an
// internal note is kept for the payer and never reaches the provider.
func TestDecisionSafeguards(t *testing.T) {
	e := testenv.Start(t)
	id := submitPended(t, e) // each item asks for 1 unit on 2016-08-09
	doc := `{"npi": "1245319599", "name": "Chidi Okafor, MD", "role": "physician"}`
	tests := []struct{ name, item, expression, want string }{
		{"more units than requested", `{"sequence": 1, "action": "modify", "quantity": 4}`, "items[0].quantity", "more than was requested"},
		{"a longer period than requested", `{"sequence": 1, "action": "modify", "from": "2016-08-01", "to": "2016-08-31"}`, "items[0].to", "longer period"},
		{"a denial without a note", `{"sequence": 1, "action": "deny", "reasonCode": "0U"}`, "items[0].note", "note to the provider"},
		{"a denial without a reason code", `{"sequence": 1, "action": "deny", "note": "Not covered."}`, "items[0].reasonCode", "reasonCode"},
		{"an unknown reason code", `{"sequence": 1, "action": "deny", "reasonCode": "ZZ9", "note": "Not covered."}`, "items[0].reasonCode", "valid: 0U"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postDecision(t, e, id, `{"reviewer": `+doc+`, "items": [`+tt.item+`]}`)
			if r.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
			}
			checkOutcome(t, r.Body, tt.expression, tt.want)
		})
	}
	const secret = "Internal: member called twice about this."
	r := postDecision(t, e, id, `{"reviewer": `+doc+`, "items": [{"sequence": 1, "action": "modify", "quantity": 1, "from": "2016-08-09", "to": "2016-08-09",
		"note": "Authorized for the requested day.", "internalNote": "`+secret+`"}]}`)
	if r.Status != http.StatusOK {
		t.Fatalf("modify within the request: %d %s", r.Status, r.Body)
	}
	if strings.Contains(string(r.Body), secret) {
		t.Errorf("the internal note reached the provider's response")
	}
	if task := e.Get("/review/tasks/" + id); !strings.Contains(string(task.Body), secret) {
		t.Errorf("the review task does not keep the internal note")
	}
}
