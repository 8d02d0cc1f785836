package server_test

import (
	"net/http"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/priora/priora/internal/testenv"
)

// TestClaimUpdateSequence runs the PAS kit's four-step update sequence
// (Inferno 2.4.1–2.4.5): initial request, add an item, modify one and
// cancel another, cancel everything.
func TestClaimUpdateSequence(t *testing.T) {
	e := testenv.Start(t)
	steps := []struct {
		fixture string
		want    map[int]string
	}{
		{"pas/kit/claim_update_initial_submit_payload.json", map[int]string{1: "A1"}},
		{"pas/kit/claim_update_add_item_submit_payload.json", map[int]string{1: "A1", 2: "A1"}},
		{"pas/kit/claim_update_modify_cancel_submit_payload.json", map[int]string{1: "A1", 2: "C"}},
		{"pas/kit/claim_update_cancel_all_submit_payload.json", map[int]string{1: "C", 2: "C"}},
	}
	var preAuthRef any
	for _, step := range steps {
		t.Run(step.fixture, func(t *testing.T) {
			req := testenv.Fixture(t, step.fixture)
			r := e.With(t).Post(submitPath, req)
			if r.Status != http.StatusOK {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			cr, items := checkPASResponse(t, r.Body)
			got := map[int]string{}
			for seq, it := range items {
				got[seq] = it.ReviewAction
			}
			if diff := cmp.Diff(step.want, got); diff != "" {
				t.Errorf("current results (-want +got):\n%s", diff)
			}
			// spec-34: every returned itemSequence is on the submitted Claim;
			// spec-46: every submitted item has a current result.
			submitted := requestSequences(t, req)
			var answered []int
			for seq := range items {
				answered = append(answered, seq)
			}
			sort.Ints(answered)
			if diff := cmp.Diff(submitted, answered); diff != "" {
				t.Errorf("submitted vs answered item sequences (-submitted +answered):\n%s", diff)
			}
			if preAuthRef == nil {
				preAuthRef = cr["preAuthRef"]
			} else if cr["preAuthRef"] != nil && cr["preAuthRef"] != preAuthRef {
				t.Errorf("preAuthRef changed across the chain: %v → %v", preAuthRef, cr["preAuthRef"])
			}
		})
	}
	if n := countAuthorizations(t, e); n != 1 {
		t.Errorf("%d authorizations, want the whole chain in 1", n)
	}
	// Replaying a step answers what was answered then.
	again := e.Post(submitPath, testenv.Fixture(t, steps[1].fixture))
	_, items := checkPASResponse(t, again.Body)
	if items[2].ReviewAction != "A1" {
		t.Errorf("replayed step 2 answered item 2 = %s, want its original A1", items[2].ReviewAction)
	}
}

func TestUpdateOfDeniedRequestIsABusinessError(t *testing.T) {
	rules := `
version: 1
rules:
  - id: deny-consults
    match: {codes: [{system: "https://codesystem.x12.org/005010/1365", codes: ["3"]}]}
    decision: {action: deny, reasonCode: "0U", note: "Not covered."}
`
	e := testenv.Start(t, testenv.WithRules(rules))
	if r := e.Post(submitPath, testenv.Fixture(t, "pas/kit/claim_update_initial_submit_payload.json")); r.Status != 200 {
		t.Fatalf("initial: %d %s", r.Status, r.Body)
	}
	r := e.Post(submitPath, testenv.Fixture(t, "pas/kit/claim_update_add_item_submit_payload.json"))
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	cr, _ := checkPASResponse(t, r.Body)
	if cr["outcome"] != "error" {
		t.Fatalf("outcome %v, want error", cr["outcome"])
	}
	errs := cr["error"].([]any)
	if code := codeOf(errs[0].(map[string]any)["code"]); code != "AA" {
		t.Errorf("error code %q, want X12 901 AA", code)
	}
	notes := cr["processNote"].([]any)
	if len(notes) == 0 {
		t.Errorf("business error carries no explanation")
	}
}
