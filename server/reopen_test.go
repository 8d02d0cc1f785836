package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/pas"
)

// taskDetail is the part of GET /review/tasks/{id} these tests read.
type taskDetail struct {
	State        string    `json:"state"`
	DueAt        time.Time `json:"dueAt"`
	ExtendedFrom time.Time `json:"extendedFrom"`
	NewInfo      int       `json:"newInfo"`
	Assignee     *struct {
		Key string `json:"key"`
	} `json:"assignee"`
	Items []struct {
		Sequence int `json:"sequence"`
		Decision struct {
			Action     string `json:"action"`
			Reopened   string `json:"reopened"`
			Overturned string `json:"overturned"`
			Appeal     int    `json:"appeal"`
		} `json:"decision"`
	} `json:"items"`
	SupportingInfo []struct {
		Sequence int  `json:"sequence"`
		New      bool `json:"new"`
	} `json:"supportingInfo"`
	Appeals []struct {
		Kind      string            `json:"kind"`
		Items     []int             `json:"items"`
		Documents []json.RawMessage `json:"documents"`
	} `json:"appeals"`
	Responses []struct{ Number int } `json:"responses"`
	Outcome   string                 `json:"outcome"`
}

func getTask(t *testing.T, e *testenv.Env, id string) taskDetail {
	t.Helper()
	r := e.With(t).Get("/review/tasks/" + id)
	if r.Status != http.StatusOK {
		t.Fatalf("task %s: %d %s", id, r.Status, r.Body)
	}
	var d taskDetail
	if err := json.Unmarshal(r.Body, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// A nurse asks the provider for a document and takes the 14-day
// extension; the request waits for the provider; the provider's PAS update
// brings the document, which is marked new, and the request is back in the
// nurse's queue; after the decisions a physician reopens the denied item on
// appeal (a nurse may not) and overturns the denial, a new response
// version, counted as an overturn.
func TestRequestInfoAndReconsideration(t *testing.T) {
	e := testenv.Start(t)
	original := pendedRequest(t)
	r := e.Post(submitPath, original)
	if r.Status != http.StatusOK {
		t.Fatalf("submit: %d %s", r.Status, r.Body)
	}
	id := testenv.AuthorizationID(t, r.Body)
	received := getTask(t, e, id)
	if r := assignment(t, e, id, "claim", `{"reviewer": `+nurseA+`}`); r.Status != http.StatusOK {
		t.Fatalf("claim: %d %s", r.Status, r.Body)
	}

	// A request for information with an extension the rules do not allow.
	r = postDecision(t, e, id, `{"reviewer": `+nurseA+`, "items": [{"sequence": 1, "action": "request-info", "codes": ["11506-3"], "extension": "because"}]}`)
	if r.Status != http.StatusBadRequest {
		t.Fatalf("unknown extension reason: %d, want 400", r.Status)
	}
	checkOutcome(t, r.Body, "items[0].extension", "422.568")
	r = postDecision(t, e, id, `{"reviewer": `+nurseA+`, "items": [{"sequence": 1, "action": "request-info", "codes": ["11506-3"], "extension": "noncontract-evidence", "note": "Send the orthopedic progress note."}]}`)
	if r.Status != http.StatusOK {
		t.Fatalf("request for information: %d %s", r.Status, r.Body)
	}
	testenv.RequireValid(t, "request-info response", testenv.Validator(t).ValidatePASResponse(r.Body))
	waiting := getTask(t, e, id)
	if waiting.State != pas.StateAwaitingInfo || waiting.Assignee == nil {
		t.Fatalf("after the request for information: state %q, assignee %v; want awaiting-info, kept", waiting.State, waiting.Assignee)
	}
	if !waiting.ExtendedFrom.Equal(received.DueAt) || !waiting.DueAt.Equal(received.DueAt.AddDate(0, 0, 14)) {
		t.Errorf("deadline %s (extended from %s), want %s + 14 days", waiting.DueAt, waiting.ExtendedFrom, received.DueAt)
	}
	if got := ids(listTasks(t, e, map[string][]string{"state": {"awaiting-info"}})); !slices.Equal(got, []string{id}) {
		t.Errorf("awaiting-info filter = %v", got)
	}
	r = postDecision(t, e, id, `{"reviewer": `+nurseA+`, "items": [{"sequence": 2, "action": "request-info", "codes": ["11506-3"], "extension": "exigent"}]}`)
	if r.Status != http.StatusConflict {
		t.Errorf("a second extension: %d, want 409", r.Status)
	}

	// The provider answers with a PAS update carrying the document.
	const note = "Orthopedic progress note: failed 12 weeks of therapy."
	r = e.Post(submitPath, testenv.InfoUpdate(t, original, "knee-update-1", note))
	if r.Status != http.StatusOK {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}
	back := getTask(t, e, id)
	if back.State != pas.StateInReview || back.Assignee == nil || back.NewInfo != 1 {
		t.Fatalf("after the provider's update: state %q, assignee %v, newInfo %d; want in-review, kept, 1", back.State, back.Assignee, back.NewInfo)
	}
	var newSeqs []int
	for _, si := range back.SupportingInfo {
		if si.New {
			newSeqs = append(newSeqs, si.Sequence)
		}
	}
	if len(newSeqs) != 1 || newSeqs[0] != back.SupportingInfo[len(back.SupportingInfo)-1].Sequence {
		t.Errorf("supporting information marked new = %v, want only the document the update added", newSeqs)
	}
	if !back.DueAt.Equal(waiting.DueAt) {
		t.Errorf("the provider's answer moved the deadline: %s, want %s", back.DueAt, waiting.DueAt)
	}
	if task := e.Get("/review/tasks/" + id); !strings.Contains(string(task.Body), base64.StdEncoding.EncodeToString([]byte(note))) {
		t.Errorf("the task does not carry the new document")
	}

	// Decide: the nurse approves item 1, the physician denies item 2.
	if r := postDecision(t, e, id, `{"reviewer": `+nurseA+`, "items": [{"sequence": 1, "action": "approve"}]}`); r.Status != http.StatusOK {
		t.Fatalf("approve: %d %s", r.Status, r.Body)
	}
	if r := postDecision(t, e, id, `{"reviewer": `+physician+`, "items": [{"sequence": 2, "action": "deny", "reasonCode": "0U", "note": "Not medically necessary."}]}`); r.Status != http.StatusOK {
		t.Fatalf("deny: %d %s", r.Status, r.Body)
	}
	decided := getTask(t, e, id)
	if decided.State != pas.StateDecided || decided.NewInfo != 0 {
		t.Fatalf("after the decisions: state %q newInfo %d", decided.State, decided.NewInfo)
	}

	// A nurse cannot reopen; bad reopenings are refused.
	appeal := `"kind": "appeal", "items": [2], "reason": "Provider appeal with the imaging report.", "from": "provider",
		"documents": [{"resourceType": "DocumentReference", "status": "current", "content": [{"attachment": {"contentType": "text/plain", "data": "` +
		base64.StdEncoding.EncodeToString([]byte("MRI: bone-on-bone arthritis.")) + `"}}]}]`
	reopen := func(body string) *testenv.Response {
		return e.Post("/review/tasks/"+id+"/reopen", []byte(body), "Content-Type", "application/json")
	}
	if r := reopen(`{"reviewer": ` + nurseA + `, ` + appeal + `}`); r.Status != http.StatusForbidden {
		t.Fatalf("a nurse reopening: %d, want 403 %s", r.Status, r.Body)
	} else {
		checkOutcome(t, r.Body, "reviewer.role", "physician")
	}
	for _, bad := range []struct{ body, expression string }{
		{`{"reviewer": ` + physician + `, "kind": "appeal", "items": [2]}`, "reason"},
		{`{"reviewer": ` + physician + `, "kind": "complaint", "items": [2], "reason": "x"}`, "kind"},
		{`{"reviewer": ` + physician + `, "kind": "appeal", "items": [9], "reason": "x"}`, "items[0]"},
		{`{"reviewer": ` + physician + `, "kind": "appeal", "items": [2], "reason": "x", "documents": [{"resourceType": "Patient"}]}`, "documents[0].resourceType"},
		{`{"reviewer": ` + physician + `, "kind": "appeal", "items": [2], "reason": "x", "documents": [{"resourceType": "DocumentReference", "content": [{"attachment": {"data": "%%%"}}]}]}`, "documents[0]"},
	} {
		if r := reopen(bad.body); r.Status/100 != 4 {
			t.Errorf("reopen %s: %d, want 4xx", bad.body, r.Status)
		} else {
			checkOutcome(t, r.Body, bad.expression, "")
		}
	}
	if d := getTask(t, e, id); d.State != pas.StateDecided || len(d.Appeals) != 0 {
		t.Fatalf("refused reopenings changed the request: %q, %d appeals", d.State, len(d.Appeals))
	}

	// The physician records the appeal: item 2 is reopened, nothing is sent yet.
	if r := reopen(`{"reviewer": ` + physician + `, ` + appeal + `}`); r.Status != http.StatusOK {
		t.Fatalf("appeal: %d %s", r.Status, r.Body)
	}
	reopened := getTask(t, e, id)
	if reopened.State != pas.StateReopened || len(reopened.Appeals) != 1 || len(reopened.Appeals[0].Documents) != 1 {
		t.Fatalf("after the appeal: state %q, appeals %+v", reopened.State, reopened.Appeals)
	}
	if it := reopened.Items[1].Decision; it.Action != "pend" || it.Reopened != "deny" || it.Appeal != 1 {
		t.Errorf("item 2 after the appeal = %+v, want pended, reopening a denial", it)
	}
	if len(reopened.Responses) != len(decided.Responses) {
		t.Errorf("reopening sent a response (%d versions, was %d)", len(reopened.Responses), len(decided.Responses))
	}
	if got := ids(listTasks(t, e, map[string][]string{"state": {"reopened"}})); !slices.Equal(got, []string{id}) {
		t.Errorf("reopened filter = %v", got)
	}
	// Only a physician decides a reopened item; the physician overturns.
	if r := postDecision(t, e, id, `{"reviewer": `+nurseA+`, "items": [{"sequence": 2, "action": "approve"}]}`); r.Status != http.StatusForbidden {
		t.Errorf("a nurse deciding the reopened item: %d, want 403", r.Status)
	}
	r = postDecision(t, e, id, `{"reviewer": `+physician+`, "items": [{"sequence": 2, "action": "approve", "note": "Approved on appeal."}]}`)
	if r.Status != http.StatusOK {
		t.Fatalf("overturn: %d %s", r.Status, r.Body)
	}
	testenv.RequireValid(t, "overturn response", testenv.Validator(t).ValidatePASResponse(r.Body))
	if _, items := checkPASResponse(t, r.Body); items[1].ReviewAction != "A1" || items[2].ReviewAction != "A1" {
		t.Errorf("response after the overturn = %+v, want both approved", items)
	}
	final := getTask(t, e, id)
	if final.State != pas.StateDecided || final.Outcome != "approved" || final.Items[1].Decision.Overturned != "deny" {
		t.Errorf("after the overturn: state %q outcome %q item 2 %+v", final.State, final.Outcome, final.Items[1].Decision)
	}
	if len(final.Responses) != len(decided.Responses)+1 {
		t.Errorf("the new decision made %d response versions, want one", len(final.Responses)-len(decided.Responses))
	}
	m, err := e.App.PAS.Metrics(context.Background(), pas.MetricsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if m.All.Overturned != 1 || m.All.ApprovedAfterResubmission != 1 {
		t.Errorf("metrics: overturned %d, approved after resubmission or appeal %d; want 1 and 1", m.All.Overturned, m.All.ApprovedAfterResubmission)
	}
}

// Documents that reach the payer outside PAS (a fax) are attached through
// the review API: the request awaiting them returns to the queue with the
// document marked new until the next decision; bad documents and decided
// requests are refused.
func TestAttachDocuments(t *testing.T) {
	e := testenv.Start(t)
	r := e.Post(submitPath, pendedRequest(t))
	if r.Status != http.StatusOK {
		t.Fatalf("submit: %d", r.Status)
	}
	id := testenv.AuthorizationID(t, r.Body)
	if r := postDecision(t, e, id, `{"reviewer": `+nurseA+`, "items": [{"sequence": 1, "action": "request-info", "codes": ["11506-3"]}]}`); r.Status != http.StatusOK {
		t.Fatalf("request for information: %d %s", r.Status, r.Body)
	}
	attach := func(body string) *testenv.Response {
		return e.Post("/review/tasks/"+id+"/documents", []byte(body), "Content-Type", "application/json")
	}
	fax := `{"resourceType": "DocumentReference", "status": "current", "content": [{"attachment": {"contentType": "text/plain", "data": "` +
		base64.StdEncoding.EncodeToString([]byte("Faxed progress note.")) + `"}}]}`
	for _, bad := range []struct{ body, expression string }{
		{`{"reviewer": ` + nurseA + `, "documents": []}`, "documents"},
		{`{"reviewer": ` + nurseA + `, "documents": [{"resourceType": "Binary"}]}`, "documents[0].resourceType"},
		{`{"reviewer": ` + nurseA + `, "documents": [{"resourceType": "DocumentReference", "content": []}]}`, "documents[0].content"},
		{`{"documents": [` + fax + `]}`, "reviewer"},
	} {
		if r := attach(bad.body); r.Status != http.StatusBadRequest {
			t.Errorf("attach %s: %d, want 400", bad.body, r.Status)
		} else {
			checkOutcome(t, r.Body, bad.expression, "")
		}
	}
	if r := attach(`{"reviewer": ` + nurseA + `, "note": "Received by fax.", "documents": [` + fax + `]}`); r.Status != http.StatusOK {
		t.Fatalf("attach: %d %s", r.Status, r.Body)
	}
	var d struct {
		State    string `json:"state"`
		NewInfo  int    `json:"newInfo"`
		Attached []struct {
			New  bool   `json:"new"`
			Note string `json:"note"`
		} `json:"attached"`
	}
	_ = json.Unmarshal(e.Get("/review/tasks/"+id).Body, &d)
	if d.State != pas.StateNew || d.NewInfo != 1 || len(d.Attached) != 1 || !d.Attached[0].New || d.Attached[0].Note != "Received by fax." {
		t.Fatalf("after the attachment: %+v, want back to new with one new document", d)
	}
	// A request keeps at most 50 attached documents (and 24 MB): every read
	// of it carries them.
	ten := strings.TrimSuffix(strings.Repeat(fax+",", 10), ",")
	for i := 0; i < 4; i++ {
		if r := attach(`{"reviewer": ` + nurseA + `, "documents": [` + ten + `]}`); r.Status != http.StatusOK {
			t.Fatalf("attach ten more: %d %s", r.Status, r.Body)
		}
	}
	if r := attach(`{"reviewer": ` + nurseA + `, "documents": [` + ten + `]}`); r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("documents 42 to 51: %d, want 413", r.Status)
	}
	if r := postDecision(t, e, id, `{"reviewer": `+nurseA+`, "items": [{"sequence": 1, "action": "approve"}, {"sequence": 2, "action": "approve"}]}`); r.Status != http.StatusOK {
		t.Fatalf("decision: %d %s", r.Status, r.Body)
	}
	d.NewInfo, d.Attached = 0, nil
	_ = json.Unmarshal(e.Get("/review/tasks/"+id).Body, &d)
	if d.NewInfo != 0 || d.Attached[0].New {
		t.Errorf("after the decision the document is still new: %+v", d)
	}
	if r := attach(`{"reviewer": ` + nurseA + `, "documents": [` + fax + `]}`); r.Status != http.StatusConflict {
		t.Errorf("attaching to a decided request: %d, want 409", r.Status)
	}
}

// TestOverdueReopened: a reopened item runs on the reconsideration clock
// (30 days from the appeal), not the original deadline, and the queue's
// overdue filter agrees with it: listed only once the 30 days have passed.
func TestOverdueReopened(t *testing.T) {
	var offset atomic.Int64
	e := testenv.Start(t, testenv.WithNow(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }))
	r := e.Post(submitPath, pendedRequest(t))
	if r.Status != http.StatusOK {
		t.Fatalf("submit: %d %s", r.Status, r.Body)
	}
	id := testenv.AuthorizationID(t, r.Body)
	if r := postDecision(t, e, id, `{"reviewer": `+physician+`, "items": [{"sequence": 1, "action": "approve"}, {"sequence": 2, "action": "deny", "reasonCode": "0U", "note": "Not medically necessary."}]}`); r.Status != http.StatusOK {
		t.Fatalf("decide: %d %s", r.Status, r.Body)
	}
	offset.Store(int64(10 * 24 * time.Hour)) // the original 7-day deadline has passed
	if r := e.Post("/review/tasks/"+id+"/reopen", []byte(`{"reviewer": `+physician+`, "kind": "reconsideration", "items": [2], "reason": "New imaging."}`), "Content-Type", "application/json"); r.Status != http.StatusOK {
		t.Fatalf("reopen: %d %s", r.Status, r.Body)
	}
	overdue := func() []string { return ids(listTasks(t, e, url.Values{"overdue": {"true"}})) }
	if got := overdue(); len(got) != 0 {
		t.Errorf("a reopened item within its 30 days is listed as overdue: %v", got)
	}
	offset.Store(int64(41 * 24 * time.Hour))
	if got := overdue(); !slices.Equal(got, []string{id}) {
		t.Errorf("overdue after the reconsideration deadline = %v, want [%s]", got, id)
	}
}
