package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/priora/priora/internal/testenv"
)

// queueRequest is the pended knee request as its own submission (bundleID),
// for the patient family name, member id and item code given; the kit's
// level of service is urgent (expedited), a code not starting with 2 is
// made elective (standard).
func queueRequest(t *testing.T, bundleID, family, member, code string) []byte {
	t.Helper()
	return edit(t, pendedRequest(t), func(b map[string]any) {
		b["identifier"].(map[string]any)["value"] = bundleID
		if code[0] != '2' {
			for _, x := range claim(b)["extension"].([]any) {
				if x := x.(map[string]any); strings.HasSuffix(x["url"].(string), "extension-levelOfServiceCode") {
					x["valueCodeableConcept"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = "E"
				}
			}
		}
		for _, e := range b["entry"].([]any) {
			r := e.(map[string]any)["resource"].(map[string]any)
			switch r["resourceType"] {
			case "Patient":
				r["name"].([]any)[0].(map[string]any)["family"] = family
			case "Coverage":
				for _, id := range r["identifier"].([]any) {
					if id.(map[string]any)["value"] == "MEM-1234567" {
						id.(map[string]any)["value"] = member
					}
				}
			}
		}
		for _, it := range claim(b)["item"].([]any) {
			it.(map[string]any)["productOrService"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = code
		}
	})
}

// queueTask is a task summary as the review API lists it.
type queueTask struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Assignee *struct {
		Key  string `json:"key"`
		Name string `json:"name"`
		NPI  string `json:"npi"`
		By   string `json:"by"`
	} `json:"assignee"`
	Duplicates []string `json:"possibleDuplicates"`
	Notified   string   `json:"ehrNotified"`
	Outcome    string   `json:"outcome"`
	DecidedBy  string   `json:"decidedBy"`
}

func listTasks(t *testing.T, e *testenv.Env, query url.Values) []queueTask {
	t.Helper()
	r := e.With(t).Get("/review/tasks?" + query.Encode())
	if r.Status != http.StatusOK {
		t.Fatalf("queue %s: %d %s", query.Encode(), r.Status, r.Body)
	}
	var l struct{ Tasks []queueTask }
	if err := json.Unmarshal(r.Body, &l); err != nil {
		t.Fatal(err)
	}
	return l.Tasks
}

func ids(ts []queueTask) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	slices.Sort(out)
	return out
}

const (
	nurseA    = `{"npi": "1234567893", "name": "Ana Rivera, RN", "role": "nurse"}`
	nurseB    = `{"npi": "1679576722", "name": "Ben Ortiz, RN", "role": "nurse"}`
	physician = `{"npi": "1245319599", "name": "Chidi Okafor, MD", "role": "physician"}`
)

func assignment(t *testing.T, e *testenv.Env, id, what, body string) *testenv.Response {
	t.Helper()
	return e.With(t).Post("/review/tasks/"+id+"/"+what, []byte(body), "Content-Type", "application/json")
}

// A nurse and a physician work the queue: search and filters narrow it,
// a claim is exclusive (two reviewers claiming at once: one wins), only
// the assignee, a physician or an administrator may release, and a
// physician assigns to another nurse.
func TestQueueSearchAndAssignment(t *testing.T) {
	e := testenv.Start(t)
	submitQ := func(bundleID, family, member, code string) string {
		r := e.Post(submitPath, queueRequest(t, bundleID, family, member, code))
		if r.Status != http.StatusOK {
			t.Fatalf("submit %s: %d %s", bundleID, r.Status, r.Body)
		}
		return testenv.AuthorizationID(t, r.Body)
	}
	smith := submitQ("q-1", "SMITH", "MEM-1234567", "27447")
	smith2 := submitQ("q-2", "SMITH", "MEM-1234567", "27447") // same member and code: a possible duplicate
	jones := submitQ("q-3", "JONES", "MEM-7654321", "99243")  // standard (elective)

	all := listTasks(t, e, url.Values{})
	if got := ids(all); !slices.Equal(got, ids([]queueTask{{ID: smith}, {ID: smith2}, {ID: jones}})) {
		t.Fatalf("open queue = %v", got)
	}
	for _, tk := range all {
		if tk.State != "new" || tk.Assignee != nil {
			t.Errorf("%s: state %q assignee %v, want new and unassigned", tk.ID, tk.State, tk.Assignee)
		}
		if tk.Notified != "none" {
			t.Errorf("%s: ehrNotified %q, want none (no response after the synchronous one)", tk.ID, tk.Notified)
		}
		wantDup := map[string][]string{smith: {smith2}, smith2: {smith}, jones: nil}[tk.ID]
		if !slices.Equal(tk.Duplicates, wantDup) {
			t.Errorf("%s: possible duplicates %v, want %v", tk.ID, tk.Duplicates, wantDup)
		}
	}

	filters := []struct {
		name  string
		query url.Values
		want  []string
	}{
		{"member id", url.Values{"member": {"MEM-7654321"}}, []string{jones}},
		{"patient name, any case, part of it", url.Values{"patient": {"smi"}}, []string{smith, smith2}},
		{"patient name with regexp characters", url.Values{"patient": {".*"}}, nil},
		{"provider NPI", url.Values{"npi": {"1234567893"}}, []string{smith, smith2, jones}},
		{"another NPI", url.Values{"npi": {"1679576722"}}, nil},
		{"code", url.Values{"code": {"99243"}}, []string{jones}},
		{"standard priority", url.Values{"priority": {"standard"}}, []string{jones}},
		{"expedited priority", url.Values{"priority": {"expedited"}}, []string{smith, smith2}},
		{"state new", url.Values{"state": {"new"}}, []string{smith, smith2, jones}},
		{"not overdue", url.Values{"overdue": {"true"}}, nil},
		{"eligibility not checked", url.Values{"eligibility": {"unchecked"}}, []string{smith, smith2, jones}},
		{"unassigned", url.Values{"assignee": {"unassigned"}}, []string{smith, smith2, jones}},
		{"member and code together", url.Values{"member": {"MEM-1234567"}, "code": {"99243"}}, nil},
	}
	for _, f := range filters {
		t.Run(f.name, func(t *testing.T) {
			got := ids(listTasks(t, e, f.query))
			want := slices.Clone(f.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("queue ?%s = %v, want %v", f.query.Encode(), got, want)
			}
		})
	}
	for _, bad := range []string{"state=lost", "priority=urgent", "npi=123", "overdue=yes", "eligibility=maybe", "assignee=someone"} {
		if r := e.Get("/review/tasks?" + bad); r.Status != http.StatusBadRequest {
			t.Errorf("?%s: %d, want 400", bad, r.Status)
		} else {
			checkOutcome(t, r.Body, "", "must")
		}
	}

	// Two nurses claim the same request at once: exactly one gets it.
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i, who := range []string{nurseA, nurseB} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = assignment(t, e, smith, "claim", `{"reviewer": `+who+`}`).Status
		}()
	}
	wg.Wait()
	slices.Sort(statuses)
	if !slices.Equal(statuses, []int{http.StatusOK, http.StatusConflict}) {
		t.Fatalf("concurrent claims answered %v, want one 200 and one 409", statuses)
	}
	held := listTasks(t, e, url.Values{"assignee": {"assigned"}})
	if len(held) != 1 || held[0].ID != smith || held[0].State != "in-review" || held[0].Assignee.By != "self" {
		t.Fatalf("assigned tasks = %+v, want %s in review", held, smith)
	}
	holder, other := nurseA, nurseB
	if held[0].Assignee.NPI == "1679576722" {
		holder, other = nurseB, nurseA
	}
	// Claiming again is harmless for the holder and refused for the other.
	if r := assignment(t, e, smith, "claim", `{"reviewer": `+holder+`}`); r.Status != http.StatusOK {
		t.Errorf("the holder claiming again: %d %s", r.Status, r.Body)
	}
	if r := assignment(t, e, smith, "claim", `{"reviewer": `+other+`}`); r.Status != http.StatusConflict {
		t.Errorf("the other nurse claiming: %d, want 409", r.Status)
	} else {
		checkOutcome(t, r.Body, "", "already assigned")
	}
	// The other nurse may not release it, nor assign it.
	if r := assignment(t, e, smith, "release", `{"reviewer": `+other+`}`); r.Status != http.StatusForbidden {
		t.Errorf("another nurse releasing: %d, want 403", r.Status)
	}
	if r := assignment(t, e, smith, "assign", `{"reviewer": `+other+`, "assignee": `+other+`}`); r.Status != http.StatusForbidden {
		t.Errorf("a nurse assigning: %d, want 403", r.Status)
	} else {
		checkOutcome(t, r.Body, "reviewer.role", "physician or an administrator")
	}
	// A physician reassigns it to the other nurse, who finds it under "mine".
	if r := assignment(t, e, smith, "assign", `{"reviewer": `+physician+`, "assignee": `+other+`}`); r.Status != http.StatusOK {
		t.Fatalf("a physician assigning: %d %s", r.Status, r.Body)
	}
	var otherNPI string
	_ = json.Unmarshal([]byte(other), &struct{ NPI *string }{&otherNPI})
	mine := listTasks(t, e, url.Values{"assignee": {otherNPI}})
	if len(mine) != 1 || mine[0].ID != smith || mine[0].Assignee.By != "npi:1245319599" {
		t.Fatalf("the other nurse's tasks = %+v", mine)
	}
	if got := ids(listTasks(t, e, url.Values{"assignee": {"unassigned"}})); !slices.Equal(got, ids([]queueTask{{ID: smith2}, {ID: jones}})) {
		t.Errorf("unassigned after the assignment = %v", got)
	}
	if r := assignment(t, e, smith, "assign", `{"reviewer": `+physician+`, "assignee": {"name": "Root", "role": "admin"}}`); r.Status != http.StatusBadRequest {
		t.Errorf("assigning to an administrator: %d, want 400", r.Status)
	}
	if r := assignment(t, e, smith, "claim", `{"reviewer": {"name": "x"}, "extra": 1}`); r.Status != http.StatusBadRequest {
		t.Errorf("unknown member in the body: %d, want 400", r.Status)
	}
	if r := assignment(t, e, "PAnosuch", "claim", `{"reviewer": `+nurseA+`}`); r.Status != http.StatusNotFound {
		t.Errorf("claiming a request that does not exist: %d, want 404", r.Status)
	}
	// The assignee releases it: back to new and unassigned.
	if r := assignment(t, e, smith, "release", `{"reviewer": `+other+`}`); r.Status != http.StatusOK {
		t.Fatalf("the assignee releasing: %d %s", r.Status, r.Body)
	}
	if got := listTasks(t, e, url.Values{"state": {"new"}}); len(got) != 3 {
		t.Errorf("after the release %d tasks are new, want 3", len(got))
	}

	// A decided request cannot be claimed, and the Decided list says how
	// it ended and who decided.
	r := postDecision(t, e, jones, `{"reviewer": `+physician+`, "items": [{"sequence": 1, "action": "approve"}, {"sequence": 2, "action": "deny", "reasonCode": "0U", "note": "Not medically necessary."}]}`)
	if r.Status != http.StatusOK {
		t.Fatalf("decision: %d %s", r.Status, r.Body)
	}
	testenv.RequireValid(t, "decision response", testenv.Validator(t).ValidatePASResponse(r.Body))
	if r := assignment(t, e, jones, "claim", `{"reviewer": `+nurseA+`}`); r.Status != http.StatusConflict {
		t.Errorf("claiming a decided request: %d, want 409", r.Status)
	}
	decided := listTasks(t, e, url.Values{"status": {"complete"}})
	if len(decided) != 1 || decided[0].State != "decided" || decided[0].Outcome != "partially-approved" || decided[0].DecidedBy != "Chidi Okafor, MD" {
		t.Errorf("decided list = %+v, want %s partially approved by Chidi Okafor, MD", decided, jones)
	}
	if decided[0].Notified != "no-subscription" && decided[0].Notified != "pending" {
		t.Errorf("ehrNotified of a decision with no subscription = %q", decided[0].Notified)
	}
}

// Every code has its description beside it: the request's own display,
// else the shipped ICD-10-CM or HCPCS list (naming its source); CPT codes
// get no shipped description (AMA-licensed). Each diagnosis lists the items
// pointing to it. A rule's request for the sleep study leaves the request
// awaiting the provider.
func TestCodeDisplays(t *testing.T) {
	e := testenv.Start(t)
	type detail struct {
		State string `json:"state"`
		Items []struct {
			Code          string `json:"code"`
			Display       string `json:"display"`
			DisplaySource string `json:"displaySource"`
			Diagnoses     []int  `json:"diagnosisSequence"`
		} `json:"items"`
		Diagnoses []struct {
			Sequence      int    `json:"sequence"`
			Code          string `json:"code"`
			Display       string `json:"display"`
			DisplaySource string `json:"displaySource"`
			Items         []int  `json:"items"`
		} `json:"diagnoses"`
	}
	get := func(fixture string) detail {
		t.Helper()
		r := e.Post(submitPath, testenv.Fixture(t, fixture))
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", fixture, r.Status, r.Body)
		}
		var d detail
		if err := json.Unmarshal(e.Get("/review/tasks/"+testenv.AuthorizationID(t, r.Body)).Body, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	cpap := get("policies/cpap-osa-unknown.json")
	if it := cpap.Items[0]; it.Code != "E0601" || it.Display != "Continuous positive airway pressure (cpap) device" || !strings.Contains(it.DisplaySource, "HCPCS") {
		t.Errorf("HCPCS item = %+v, want the shipped CMS description", it)
	}
	if len(cpap.Diagnoses) == 0 {
		t.Fatal("no diagnoses")
	}
	// This request's item carries no diagnosisSequence: no item points to the diagnosis.
	if dx := cpap.Diagnoses[0]; dx.Code != "G47.33" || dx.Display != "Obstructive sleep apnea (adult) (pediatric)" || !strings.Contains(dx.DisplaySource, "ICD-10-CM") ||
		len(dx.Items) != 0 || len(cpap.Items[0].Diagnoses) != 0 {
		t.Errorf("diagnosis = %+v (item points to %v), want G47.33 with its ICD-10-CM description and no pointer", dx, cpap.Items[0].Diagnoses)
	}
	if cpap.State != "awaiting-info" {
		t.Errorf("a rule's request for the sleep study: state %q, want awaiting-info", cpap.State)
	}
	mri := get("policies/mri-lumbar-unknown.json")
	if it := mri.Items[0]; it.Code != "72148" || it.Display != "" || it.DisplaySource != "" {
		t.Errorf("CPT item without a display = %+v, want no shipped description", it)
	}
	kr := e.Post(submitPath, pendedRequest(t))
	var knee detail
	_ = json.Unmarshal(e.Get("/review/tasks/"+testenv.AuthorizationID(t, kr.Body)).Body, &knee)
	if it := knee.Items[0]; it.Display != "Total knee arthroplasty" || it.DisplaySource != "request" {
		t.Errorf("CPT item with the request's display = %+v", it)
	}
	if dx := knee.Diagnoses[0]; dx.Code != "G89.4" || dx.Display != "Chronic pain syndrome" || !slices.Equal(dx.Items, []int{1, 2}) {
		t.Errorf("knee diagnosis = %+v, want G89.4 Chronic pain syndrome supporting items 1 and 2", dx)
	}
}
