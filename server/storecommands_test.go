package server_test

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/priora/priora/bench"
	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/store"
)

// storeCommandBudget is the most store commands one request of each kind
// may send on a quiet server (store.CommandCounts). On the embedded engine
// each command costs FerretDB about a millisecond of CPU whatever it
// carries, so this count is most of what a request costs the store: a
// change that raises it needs a reason that outweighs that, written here.
//
// A new request: the replay check (find keys), each distinct coverage
// assertion id it cites (find), its raw Bundle, its submission key (which
// holds the member ids), revision and head (four grouped inserts), its Claim keys
// (one bulk of upserts), the UM outbox entry and the deadline watch entry
// of a pend (two grouped inserts; the watch keeps the minute's deadline
// sweep off the authorizations) and the audit record. A replay: the key, the head and the revision with
// the probe for a newer one. An inquiry finding one request: the keys
// holding its member ids, then that request (head, revision, probe).
var storeCommandBudget = map[string]int64{
	"approved": 8,
	"pended":   10,
	"denied":   8,
	"replayed": 5,
	"$inquire": 5,
	// Feeding a pended request's UM event (in the background): its
	// revision, the chain's feed progress (read and written), the event
	// appended, the outbox entry removed.
	"UM feed": 5,
}

// TestStoreCommandsPerRequest counts the store commands of an approved, a
// pended and a denied $submit, a replayed one and an $inquire, by command
// and collection, and holds each to its budget.
func TestStoreCommandsPerRequest(t *testing.T) {
	rules := `
version: 1
defaults: {unknownCode: pend, authorizationDays: 30}
rules:
  - id: approve-visit
    match: {codes: [{system: "https://codesystem.x12.org/005010/1365", codes: ["3"]}]}
    decision: {action: approve, reason: routine}
  - id: deny-dme
    match: {codes: [{system: "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", codes: ["E0250"]}]}
    decision: {action: deny, reasonCode: "0U", note: "Not a covered benefit.", reason: excluded}
`
	e := testenv.Start(t, testenv.WithRules(rules))
	st := e.App.Store
	// Fresh identifiers for every request (Bundle, Claim, member), as
	// `priora load` sends them.
	withCode := func(system, code string) *bench.Template {
		body := edit(t, testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json"), func(b map[string]any) {
			for _, it := range claim(b)["item"].([]any) {
				it.(map[string]any)["productOrService"] = map[string]any{"coding": []any{map[string]any{"system": system, "code": code}}}
			}
		})
		tpl, err := bench.SubmitTemplate(code, body)
		if err != nil {
			t.Fatal(err)
		}
		return tpl
	}
	approve := withCode("https://codesystem.x12.org/005010/1365", "3")
	deny := withCode("http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "E0250")
	pend := withCode("http://www.ama-assn.org/go/cpt", "99999")

	requests := map[string]int64{} // by origin: requests sent
	// send posts body and returns the store commands it caused, once its
	// audit record (written after the response) is counted too.
	send := func(path string, body []byte, wantAction string) map[string]int64 {
		t.Helper()
		origin := "POST " + path
		before := commandsOf(st, origin)
		r := e.Post(path, body)
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, r.Status, r.Body)
		}
		if wantAction != "" && !strings.Contains(string(r.Body), `"code":"`+wantAction+`"`) {
			t.Fatalf("%s: answer has no item %s: %s", path, wantAction, r.Body)
		}
		requests[origin]++
		testenv.WaitFor(t, 10*time.Second, "the audit record of "+origin, func() bool {
			return commandsOf(st, origin)["insert audit"] == requests[origin]
		})
		after := commandsOf(st, origin)
		diff := map[string]int64{}
		for k, n := range after {
			if d := n - before[k]; d != 0 {
				diff[k] = d
			}
		}
		return diff
	}
	// A first request warms what is done once per process.
	send(submitPath, approve.Render("warm"), "A1")

	got := map[string]map[string]int64{
		"approved": send(submitPath, approve.Render("a1"), "A1"),
		"pended":   send(submitPath, pend.Render("p1"), "A4"),
		"denied":   send(submitPath, deny.Render("d1"), "A3"),
		"replayed": send(submitPath, approve.Render("a1"), "A1"),
	}
	// The pend's UM event (the only one so far), fed in the background:
	// what a round of the feed writer costs (its lease, the outbox page,
	// the feed's last number) is counted apart from what feeding the
	// chain costs. A round ends by releasing its lease.
	const feed = "UM events feed"
	testenv.WaitFor(t, 20*time.Second, "the pend's UM event in the feed", func() bool {
		c := commandsOf(st, feed)
		return c["insert umFeed"] == 1 && c["update leases"] == c["insert leases"]
	})
	fed := commandsOf(st, feed)
	rounds := fed["insert leases"]
	perChain := map[string]int64{}
	for k, n := range fed {
		switch k {
		case "find umOutbox", "find leases", "insert leases", "delete leases", "update leases", "find umFeed":
		default:
			perChain[k] = n
		}
	}
	got["UM feed"] = perChain
	// A round that met the outbox entry before the revision was written
	// looked for the revision once more.
	budget := maps.Clone(storeCommandBudget)
	budget["UM feed"] += rounds - 1

	// An inquiry that finds one request (the PAS IG's pair of examples).
	send(submitPath, testenv.Fixture(t, "pas/ig/Bundle-HomecareAuthorizationBundleExample.json"), "")
	got["$inquire"] = send(inquirePath, testenv.Fixture(t, "pas/ig/Bundle-PASClaimInquiryBundleExample.json"), "")
	if got["$inquire"]["find revisions"] == 0 {
		t.Errorf("the inquiry loaded no request: %v", got["$inquire"])
	}

	for _, kind := range []string{"approved", "pended", "denied", "replayed", "$inquire", "UM feed"} {
		var total int64
		var lines []string
		for k, n := range got[kind] {
			total += n
			lines = append(lines, fmt.Sprintf("%s=%d", k, n))
		}
		slices.Sort(lines)
		t.Logf("%-8s %2d commands: %s", kind, total, strings.Join(lines, ", "))
		if total > budget[kind] {
			t.Errorf("%s: %d store commands, budget %d", kind, total, budget[kind])
		}
	}
}

// commandsOf is the store's command counts of one origin, by
// "command collection".
func commandsOf(st *store.Store, origin string) map[string]int64 {
	out := map[string]int64{}
	for _, c := range st.CommandCounts() {
		if c.Origin == origin {
			out[strings.TrimSpace(c.Command+" "+c.Collection)] += c.N
		}
	}
	return out
}
