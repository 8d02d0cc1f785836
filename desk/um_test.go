package desk_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A nurse's denial at the desk is refused with the reason on the page and
// nothing changes; a physician's denial goes through and is recorded with
// the physician's role.
func TestDeskRoles(t *testing.T) {
	e := start(t)
	id := submit(t, e, "roles-1")
	deny := func(token string) url.Values {
		return url.Values{"csrf": {token}, "action-2": {"deny"}, "reason-2": {"0U"}, "note-2": {"Conservative therapy not documented."}}
	}

	nurse := newBrowser(t, e)
	token := nurse.mustSignIn()
	p := nurse.post("/desk/tasks/"+id+"/decision", deny(token))
	if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "needs a physician reviewer") {
		t.Fatalf("nurse's denial: %d, want 403 saying a physician is needed\n%.3000s", p.Status, p.Body)
	}
	a, err := e.App.Store.Authorization(context.Background(), "", id)
	if err != nil || a.Status != "pended" || len(a.Responses) != 1 {
		t.Fatalf("a refused denial changed the request: %v", err)
	}
	// The nurse may approve.
	if p := nurse.post("/desk/tasks/"+id+"/decision", url.Values{"csrf": {token}, "action-1": {"approve"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("nurse's approval: %d\n%.2000s", p.Status, p.Body)
	}

	doc := newBrowser(t, e)
	token = doc.mustSignInAs(physicianUser)
	if p := doc.post("/desk/tasks/"+id+"/decision", deny(token)); p.Status != http.StatusSeeOther {
		t.Fatalf("physician's denial: %d\n%.3000s", p.Status, p.Body)
	}
	a, err = e.App.Store.Authorization(context.Background(), "", id)
	if err != nil {
		t.Fatal(err)
	}
	if d := a.Items[0].Decision; d.Action != "approve" || d.ReviewerRole != "nurse" {
		t.Errorf("item 1 = %s by a %q, want approve by a nurse", d.Action, d.ReviewerRole)
	}
	if d := a.Items[1].Decision; d.Action != "deny" || d.ReviewerRole != "physician" || d.ReviewerNPI != physicianNPI {
		t.Errorf("item 2 = %s by a %q (%s), want deny by the physician", d.Action, d.ReviewerRole, d.ReviewerNPI)
	}
	if cur := a.CurrentResponse(); !strings.Contains(cur.JSON, "Physician reviewer") {
		t.Errorf("the response's reviewer extension does not say a physician reviewed it")
	}
	if page := doc.get("/desk/tasks/" + id); !strings.Contains(page.Body, "physician") {
		t.Errorf("the task page does not show the reviewer's role")
	}
}

// The desk keeps an internal note apart from the note to the provider: it
// shows on the request page and never reaches the PAS response.
func TestDeskInternalNote(t *testing.T) {
	e := start(t)
	id := submit(t, e, "internal-1")
	b := newBrowser(t, e)
	token := b.mustSignInAs(physicianUser)
	const secret = "Spoke with the medical director; revisit in March."
	// A denial without a note to the provider is refused, even with an internal note.
	p := b.post("/desk/tasks/"+id+"/decision", url.Values{"csrf": {token}, "action-2": {"deny"}, "reason-2": {"0U"}, "internal-2": {secret}})
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "note to the provider") || !strings.Contains(p.Body, secret) {
		t.Fatalf("denial without a note to the provider: %d\n%.3000s", p.Status, p.Body)
	}
	p = b.post("/desk/tasks/"+id+"/decision", url.Values{"csrf": {token}, "action-2": {"deny"}, "reason-2": {"0U"},
		"note-2": {"Conservative therapy not documented."}, "internal-2": {secret}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("denial: %d\n%.3000s", p.Status, p.Body)
	}
	a, err := e.App.Store.Authorization(context.Background(), "", id)
	if err != nil {
		t.Fatal(err)
	}
	if a.Items[1].Decision.InternalNote != secret || strings.Contains(a.CurrentResponse().JSON, secret) {
		t.Errorf("internal note stored %q; in the response: %v", a.Items[1].Decision.InternalNote, strings.Contains(a.CurrentResponse().JSON, secret))
	}
	if page := b.get("/desk/tasks/" + id); !strings.Contains(page.Body, htmlEscape(secret)) {
		t.Errorf("the request page does not show the internal note")
	}
}
