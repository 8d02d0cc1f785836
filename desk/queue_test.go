package desk_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/priora/priora/desk"
)

// A nurse searches the queue, takes a request and finds it under "Mine";
// a second nurse cannot take it; a physician assigns it to the second
// nurse; bad filters are refused.
func TestDeskQueueSearchAndAssignment(t *testing.T) {
	e := start(t)
	first := submit(t, e, "queue-1")
	second := submit(t, e, "queue-2")
	addReviewer(t, e, desk.Account{Username: "nurse.ortiz", Password: reviewerPassword, NPI: "1679576722", Name: "Ben Ortiz, RN", Role: "nurse"})

	nurse := newBrowser(t, e)
	token := nurse.mustSignIn()
	q := nurse.get("/desk/?patient=smi&code=27447&state=new&priority=expedited")
	if q.Status != http.StatusOK || !strings.Contains(q.Body, first) || !strings.Contains(q.Body, second) {
		t.Fatalf("search: %d, want both requests\n%.3000s", q.Status, q.Body)
	}
	if !strings.Contains(q.Body, "Possible duplicate") || !strings.Contains(q.Body, "Unassigned") || !strings.Contains(q.Body, ">New<") {
		t.Errorf("the queue does not show duplicates, the assignee or the state")
	}
	for _, miss := range []string{"/desk/?code=99999", "/desk/?patient=nobody", "/desk/?priority=standard", "/desk/?member=MEM-0"} {
		if p := nurse.get(miss); p.Status != http.StatusOK || strings.Contains(p.Body, `href="/desk/tasks/`+first) {
			t.Errorf("%s: %d, lists %s", miss, p.Status, first)
		}
	}
	for _, bad := range []string{"/desk/?state=lost", "/desk/?assignee=bob", "/desk/?npi=12", "/desk/?priority=now"} {
		if p := nurse.get(bad); p.Status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, p.Status)
		}
	}

	if p := nurse.post("/desk/tasks/"+first+"/claim", url.Values{"csrf": {token}}); p.Status != http.StatusSeeOther {
		t.Fatalf("claim: %d\n%.2000s", p.Status, p.Body)
	}
	page := nurse.get("/desk/tasks/" + first)
	if !strings.Contains(page.Body, "Assigned to <strong>you</strong>") || !strings.Contains(page.Body, "In review") {
		t.Errorf("the request page does not say it is assigned to the nurse, in review")
	}
	if mine := nurse.get("/desk/?assignee=mine"); !strings.Contains(mine.Body, `href="/desk/tasks/`+first) || strings.Contains(mine.Body, `href="/desk/tasks/`+second) || !strings.Contains(mine.Body, ">You<") {
		t.Errorf("Mine does not list exactly the claimed request")
	}

	other := newBrowser(t, e)
	otherToken := other.mustSignInAs("nurse.ortiz")
	if p := other.post("/desk/tasks/"+first+"/claim", url.Values{"csrf": {otherToken}}); p.Status != http.StatusConflict || !strings.Contains(p.Body, "already assigned to "+reviewerName) {
		t.Errorf("second nurse's claim: %d, want 409 naming the holder\n%.2000s", p.Status, p.Body)
	}
	if p := other.post("/desk/tasks/"+first+"/release", url.Values{"csrf": {otherToken}}); p.Status != http.StatusForbidden {
		t.Errorf("second nurse's release: %d, want 403", p.Status)
	}
	if p := other.post("/desk/tasks/"+first+"/assign", url.Values{"csrf": {otherToken}, "assignee": {"nurse.ortiz"}}); p.Status != http.StatusForbidden {
		t.Errorf("a nurse assigning: %d, want 403", p.Status)
	}

	doc := newBrowser(t, e)
	docToken := doc.mustSignInAs(physicianUser)
	if page := doc.get("/desk/tasks/" + first); !strings.Contains(page.Body, `id="assignee-select"`) {
		t.Fatalf("a physician sees no assignment form")
	}
	if p := doc.post("/desk/tasks/"+first+"/assign", url.Values{"csrf": {docToken}, "assignee": {"nurse.ortiz"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("physician's assignment: %d\n%.2000s", p.Status, p.Body)
	}
	if mine := other.get("/desk/?assignee=mine"); !strings.Contains(mine.Body, first) {
		t.Errorf("the assigned request is not under the second nurse's Mine")
	}
	if p := doc.post("/desk/tasks/"+first+"/assign", url.Values{"csrf": {docToken}, "assignee": {"nobody"}}); p.Status != http.StatusBadRequest {
		t.Errorf("assigning to an unknown account: %d, want 400", p.Status)
	}
	if p := other.post("/desk/tasks/"+first+"/release", url.Values{"csrf": {otherToken}}); p.Status != http.StatusSeeOther {
		t.Errorf("the assignee's release: %d", p.Status)
	}
	if un := nurse.get("/desk/?assignee=unassigned"); !strings.Contains(un.Body, first) || !strings.Contains(un.Body, second) {
		t.Errorf("after the release both requests are not unassigned")
	}
}
