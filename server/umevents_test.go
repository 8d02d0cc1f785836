package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/store"
	"github.com/priora/priora/umevents"
)

// umKinds lists a chain's UM events as "kind:items@response".
func umKinds(t *testing.T, e *testenv.Env, id string) []string {
	t.Helper()
	a, err := e.App.Store.Authorization(context.Background(), "", id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range a.UMEvents {
		s := ev.Kind + ":"
		for _, it := range ev.Items {
			s += string(rune('0'+it.Sequence)) + it.Action
		}
		out = append(out, s)
		if ev.ID != id+"-"+string(rune('0'+ev.Number)) || ev.Authorization != id || ev.Tenant == "" {
			t.Errorf("event %+v: id, authorization or tenant wrong", ev)
		}
	}
	return out
}

// A pend, each decision and an approaching deadline are recorded on the
// chain as UM events in the same write as the change, once each.
func TestUMEventsRecorded(t *testing.T) {
	e := testenv.Start(t)
	id := submitPended(t, e)
	if got, want := umKinds(t, e, id), []string{"pend-created:1pend2pend"}; !cmp.Equal(got, want) {
		t.Fatalf("after submit: %v, want %v", got, want)
	}
	r := postDecision(t, e, id, `{"reviewer": {"name": "Dr. Rivera", "role": "physician"}, "items": [{"sequence": 1, "action": "approve"}]}`)
	if r.Status != http.StatusOK {
		t.Fatalf("decide: %d %s", r.Status, r.Body)
	}
	// A request for information keeps the item pended: no event of this API.
	r = postDecision(t, e, id, `{"reviewer": {"name": "Dr. Rivera", "role": "physician"}, "items": [{"sequence": 2, "action": "request-info", "codes": ["11506-3"]}]}`)
	if r.Status != http.StatusOK {
		t.Fatalf("request info: %d %s", r.Status, r.Body)
	}
	ctx := context.Background()
	// The deadline is 7 days away: a lead of 8 days makes it approaching, once.
	for i, want := range []int{1, 0} {
		n, err := e.App.PAS.MarkDeadlines(ctx, 8*24*time.Hour)
		if err != nil || n != want {
			t.Fatalf("scan %d: %d events, %v; want %d", i, n, err, want)
		}
	}
	if n, _ := e.App.PAS.MarkDeadlines(ctx, time.Hour); n != 0 {
		t.Fatalf("a deadline 7 days away is not within an hour: %d events", n)
	}
	r = postDecision(t, e, id, `{"reviewer": {"name": "Dr. Rivera", "role": "physician"}, "items": [{"sequence": 2, "action": "deny", "reasonCode": "0U", "note": "Not medically necessary."}]}`)
	if r.Status != http.StatusOK {
		t.Fatalf("deny: %d %s", r.Status, r.Body)
	}
	want := []string{"pend-created:1pend2pend", "decided:1approve", "deadline-approaching:2pend", "decided:2deny"}
	if got := umKinds(t, e, id); !cmp.Equal(got, want) {
		t.Fatalf("events: %v, want %v", got, want)
	}
	a, _ := e.App.Store.Authorization(ctx, "", id)
	if last := a.UMEvents[3]; last.Status != "complete" || last.Response != len(a.Responses) || last.Items[0].ReasonCodes[0] != "0U" {
		t.Errorf("decided event: %+v, want status complete, response %d, reason 0U", last, len(a.Responses))
	}
	if dl := a.UMEvents[2]; !dl.DueAt.Equal(a.DueAt) || dl.Response != 0 || dl.Status != "pended" {
		t.Errorf("deadline event: %+v, want due %s, no response, pended", dl, a.DueAt)
	}
	if n, _ := e.App.PAS.MarkDeadlines(ctx, 8*24*time.Hour); n != 0 {
		t.Fatalf("a decided request has no approaching deadline: %d events", n)
	}
}

// submitPendedAs submits the pended knee request with a provider's token.
func submitPendedAs(t *testing.T, e *testenv.Env, token, bundleID string) string {
	t.Helper()
	body := edit(t, pendedRequest(t), func(b map[string]any) { b["identifier"].(map[string]any)["value"] = bundleID })
	r := e.With(t).Post(submitPath, body, testenv.Bearer(token)...)
	if r.Status != http.StatusOK {
		t.Fatalf("submit: %d %s", r.Status, r.Body)
	}
	return testenv.AuthorizationID(t, r.Body)
}

// umFast makes the UM event workers quick for tests.
var umFast = testenv.WithConfig(func(c *app.Config) {
	c.UMEvents = umevents.Options{PollInterval: 20 * time.Millisecond, RetryBase: 10 * time.Millisecond, RetryCap: 40 * time.Millisecond}
})

// feedPage reads the UM event feed with a token.
func feedPage(t *testing.T, e *testenv.Env, query, token string) umevents.Page {
	t.Helper()
	r := e.With(t).Get("/review/events"+query, testenv.Bearer(token)...)
	if r.Status != http.StatusOK {
		t.Fatalf("feed%s: %d %s", query, r.Status, r.Body)
	}
	var p umevents.Page
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func feedKinds(p umevents.Page) []string {
	var out []string
	for _, ev := range p.Events {
		out = append(out, fmt.Sprintf("%d %s %s", ev.Seq, ev.Kind, ev.Authorization))
	}
	return out
}

// The pull feed lists every UM event in order, to payer clients with the
// review scope only, and resumes after any event by seq or id.
func TestUMEventFeed(t *testing.T) {
	s := startSecure(t, umFast)
	tokA := s.Token(s.keyA, clientA, scopesAll)
	tokB := s.Token(s.keyB, clientB, scopesAll)
	payer := s.payerToken(t)
	idA := submitPendedAs(t, s.Env, tokA, "um-a")
	idB := submitPendedAs(t, s.Env, tokB, "um-b")
	r := s.Post("/review/tasks/"+idA+"/decision", []byte(`{"reviewer": {"name": "Dr. Rivera", "role": "physician"}, "items": [
		{"sequence": 1, "action": "approve"}, {"sequence": 2, "action": "approve"}]}`), append(testenv.Bearer(payer), "Content-Type", "application/json")...)
	if r.Status != http.StatusOK {
		t.Fatalf("decide: %d %s", r.Status, r.Body)
	}
	want := []string{"1 pend-created " + idA, "2 pend-created " + idB, "3 decided " + idA}
	var all umevents.Page
	testenv.WaitFor(t, 10*time.Second, "three events in the feed", func() bool {
		all = feedPage(t, s.Env, "", payer)
		return len(all.Events) >= 3
	})
	if got := feedKinds(all); !cmp.Equal(got, want) {
		t.Fatalf("feed: %v, want %v", got, want)
	}
	if all.Next != 3 {
		t.Errorf("next = %d, want 3", all.Next)
	}
	ev := all.Events[2]
	if ev.ID != idA+"-2" || ev.Tenant != "org-a" || ev.Status != "complete" || ev.Response != 2 || len(ev.Items) != 2 ||
		ev.Items[0].Action != "approve" || ev.Items[0].Code != "27447" || ev.Links.Task != s.URL+"/review/tasks/"+idA ||
		ev.Links.Decision != s.URL+"/review/tasks/"+idA+"/decision" || ev.DueAt.IsZero() {
		t.Errorf("decided event: %+v", ev)
	}
	if b := all.Events[1]; b.Tenant != "org-b" || b.Status != "pended" || len(b.Items) != 2 || b.Items[1].Action != "pend" {
		t.Errorf("pend-created event: %+v", b)
	}

	t.Run("resumes after a seq or an event id", func(t *testing.T) {
		for _, after := range []string{"1", url.QueryEscape(all.Events[0].ID)} {
			p := feedPage(t, s.Env, "?after="+after, payer)
			if got := feedKinds(p); !cmp.Equal(got, want[1:]) {
				t.Errorf("after=%s: %v, want %v", after, got, want[1:])
			}
		}
		p := feedPage(t, s.Env, "?after=1&_count=1", payer)
		if got := feedKinds(p); !cmp.Equal(got, want[1:2]) || p.Next != 2 {
			t.Errorf("after=1&_count=1: %v next %d, want %v next 2", got, p.Next, want[1:2])
		}
		p = feedPage(t, s.Env, "?after=3", payer)
		if len(p.Events) != 0 || p.Next != 3 {
			t.Errorf("after the last: %+v, want no events and next 3", p)
		}
	})
	t.Run("bad parameters are 400 OperationOutcomes", func(t *testing.T) {
		for q, want := range map[string]string{
			"?_count=0": "_count", "?_count=501": "_count", "?_count=x": "_count",
			"?after=-1": "after", "?after=PAnothere-1": "after", "?since=1": "since",
		} {
			r := s.Get("/review/events"+q, testenv.Bearer(payer)...)
			if r.Status != http.StatusBadRequest {
				t.Errorf("%s: %d %s, want 400", q, r.Status, r.Body)
				continue
			}
			checkOutcome(t, r.Body, want, "")
		}
	})
	t.Run("provider clients get 403", func(t *testing.T) {
		for _, tok := range []string{tokA, tokB} {
			r := s.Get("/review/events", testenv.Bearer(tok)...)
			if r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "OperationOutcome") {
				t.Errorf("%d %s, want 403 OperationOutcome", r.Status, r.Body)
			}
		}
		if r := s.Get("/review/events"); r.Status != http.StatusUnauthorized {
			t.Errorf("without a token: %d, want 401", r.Status)
		}
	})
}

// hookConsumer is a payer's UM system receiving webhooks: it checks each
// signature, fails the first failFirst deliveries with 500, and records
// the events it accepted.
type hookConsumer struct {
	t         *testing.T
	secret    []byte
	mu        sync.Mutex
	failFirst int
	calls     int
	got       []umevents.Event
	bad       []string
}

func (h *hookConsumer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if err := umevents.Verify(h.secret, r.Header.Get(umevents.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
		h.bad = append(h.bad, err.Error())
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if h.calls <= h.failFirst {
		http.Error(w, "busy", http.StatusInternalServerError)
		return
	}
	var ev umevents.Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID != r.Header.Get(umevents.HeaderEventID) ||
		fmt.Sprint(ev.Seq) != r.Header.Get(umevents.HeaderEventSeq) || ev.Kind != r.Header.Get(umevents.HeaderEventKind) {
		h.bad = append(h.bad, fmt.Sprintf("body %s does not match its headers %v (%v)", body, r.Header, err))
	}
	h.got = append(h.got, ev)
}

func (h *hookConsumer) received() []umevents.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// A payer client's webhook receives every UM event once, in order, with a
// valid signature, after failures (retried with backoff) and across a
// restart of Priora.
func TestUMEventWebhook(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef-test-secret")
	h := &hookConsumer{t: t, secret: secret, failFirst: 2}
	hook := httptest.NewServer(h)
	defer hook.Close()
	s := startSecure(t, umFast)
	s.RegisterClient(store.Client{ID: "payer-hook", Org: "payer", Kind: auth.KindPayer, Scopes: []string{auth.ScopeReview},
		Webhook: hook.URL + "/um/events", WebhookSecret: string(secret)}, s.keyAdmin)
	// A webhook of another (disabled) client receives nothing.
	other := &hookConsumer{t: t, secret: secret}
	otherHook := httptest.NewServer(other)
	defer otherHook.Close()
	s.RegisterClient(store.Client{ID: "payer-off", Org: "payer", Kind: auth.KindPayer, Scopes: []string{auth.ScopeReview},
		Webhook: otherHook.URL, WebhookSecret: string(secret), Disabled: true}, s.keyAdmin)

	tokA := s.Token(s.keyA, clientA, scopesAll)
	payer := s.payerToken(t)
	id1 := submitPendedAs(t, s.Env, tokA, "um-1")
	id2 := submitPendedAs(t, s.Env, tokA, "um-2")
	decide := func(id string, seq int) {
		t.Helper()
		r := s.Post("/review/tasks/"+id+"/decision", []byte(fmt.Sprintf(`{"reviewer": {"name": "Dr. Rivera", "role": "physician"}, "items": [
			{"sequence": %d, "action": "approve"}]}`, seq)), append(testenv.Bearer(payer), "Content-Type", "application/json")...)
		if r.Status != http.StatusOK {
			t.Fatalf("decide: %d %s", r.Status, r.Body)
		}
	}
	decide(id1, 1)
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range strings.Split(s.Logs.String(), "\n") {
				if strings.Contains(l, "UM") || strings.Contains(l, "WARN") || strings.Contains(l, "ERROR") {
					t.Log(l)
				}
			}
		}
	})
	testenv.WaitFor(t, 15*time.Second, "three events delivered", func() bool { return len(h.received()) >= 3 })

	s.Restart()
	payer = s.payerToken(t)
	decide(id2, 2)
	decide(id1, 2)
	testenv.WaitFor(t, 15*time.Second, "five events delivered", func() bool {
		return len(h.received()) >= 5
	})

	feed := feedPage(t, s.Env, "", payer)
	got := h.received()
	want := []string{"1 pend-created " + id1, "2 pend-created " + id2, "3 decided " + id1, "4 decided " + id2, "5 decided " + id1}
	if g := feedKinds(umevents.Page{Events: got}); !cmp.Equal(g, want) {
		t.Errorf("delivered: %v, want %v (each once, in order)", g, want)
	}
	if !cmp.Equal(feedKinds(feed), want) {
		t.Errorf("feed: %v, want %v", feedKinds(feed), want)
	}
	// The links name the server's origin, which moved with the restart.
	if diff := cmp.Diff(feed.Events, got, cmpopts.IgnoreFields(umevents.Event{}, "Links")); diff != "" {
		t.Errorf("webhook bodies differ from the feed:\n%s", diff)
	}
	h.mu.Lock()
	if len(h.bad) > 0 || h.calls != 5+2 {
		t.Errorf("%d calls (want 7: 2 refused, 5 accepted), bad: %v", h.calls, h.bad)
	}
	h.mu.Unlock()
	if n := len(other.received()); n != 0 {
		t.Errorf("a disabled client's webhook received %d events", n)
	}
}

// The work queue's flows record their UM events too: information received
// after a request for information, an appeal, and the decisions around
// them, each once and in order.
func TestUMEventsOfTheQueueFlows(t *testing.T) {
	e := testenv.Start(t)
	original := pendedRequest(t)
	r := e.Post(submitPath, original)
	if r.Status != http.StatusOK {
		t.Fatalf("submit: %d %s", r.Status, r.Body)
	}
	id := testenv.AuthorizationID(t, r.Body)
	steps := []struct {
		path, body string
	}{
		{"/decision", `{"reviewer": ` + nurseA + `, "items": [{"sequence": 1, "action": "request-info", "codes": ["11506-3"]}]}`},
		{"", ""}, // the provider's update with the document
		{"/decision", `{"reviewer": ` + nurseA + `, "items": [{"sequence": 1, "action": "approve"}]}`},
		{"/decision", `{"reviewer": ` + physician + `, "items": [{"sequence": 2, "action": "deny", "reasonCode": "0U", "note": "Not medically necessary."}]}`},
		{"/reopen", `{"reviewer": ` + physician + `, "kind": "appeal", "items": [2], "reason": "Provider appeal.", "from": "provider"}`},
		{"/decision", `{"reviewer": ` + physician + `, "items": [{"sequence": 2, "action": "approve", "note": "Approved on appeal."}]}`},
	}
	for i, st := range steps {
		if st.path == "" {
			r = e.Post(submitPath, testenv.InfoUpdate(t, original, "knee-update-um", "Orthopedic progress note."))
		} else {
			r = e.Post("/review/tasks/"+id+st.path, []byte(st.body), "Content-Type", "application/json")
		}
		if r.Status != http.StatusOK {
			t.Fatalf("step %d: %d %s", i, r.Status, r.Body)
		}
	}
	want := []string{"pend-created:1pend2pend", "info-received:1pend2pend", "decided:1approve", "decided:2deny",
		"appeal-received:2pend", "decided:2approve"}
	if got := umKinds(t, e, id); !cmp.Equal(got, want) {
		t.Errorf("UM events %v, want %v", got, want)
	}
}

// The deadline sweep reads the deadline watch, not every chain: once a
// process has backfilled it, a sweep that finds nothing due sends no query
// to the authorizations (on the embedded engine such a query decodes the
// whole collection, every minute). A pended request is watched from its
// submit, announced once when due, and then no longer watched; a chain
// written without an entry (by an older Priora) is found by the backfill.
func TestDeadlineSweepReadsTheWatch(t *testing.T) {
	e := testenv.Start(t)
	st := e.App.Store
	ctx := store.WithOrigin(context.Background(), "deadline test")
	authFinds := func() int64 { return st.CommandsSent("deadline test", "authorizations", "find") }
	watched := func(id string) bool {
		ws, err := st.DueWatches(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			if w.Auth == id {
				return true
			}
		}
		return false
	}
	if _, err := e.App.PAS.MarkDeadlines(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	id := submitPended(t, e)
	if !watched(id) {
		t.Fatalf("the pended request %s is not in the deadline watch", id)
	}
	before := authFinds()
	if n, err := e.App.PAS.MarkDeadlines(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("a deadline 7 days away is not within an hour: %d events, %v", n, err)
	}
	if got := authFinds() - before; got != 0 {
		t.Errorf("a sweep with nothing due sent %d finds to the authorizations; want 0", got)
	}
	if n, err := e.App.PAS.MarkDeadlines(ctx, 8*24*time.Hour); err != nil || n != 1 {
		t.Fatalf("within 8 days: %d events, %v; want 1", n, err)
	}
	if watched(id) {
		t.Errorf("%s is still watched after its deadline was announced", id)
	}
	if got, want := umKinds(t, e, id), []string{"pend-created:1pend2pend", "deadline-approaching:1pend2pend"}; !cmp.Equal(got, want) {
		t.Errorf("events: %v, want %v", got, want)
	}

	// A chain written without its entry, as an older Priora wrote them.
	r := e.Post(submitPath, edit(t, pendedRequest(t), func(b map[string]any) { b["identifier"].(map[string]any)["value"] = "old-writer" }))
	if r.Status != http.StatusOK {
		t.Fatalf("submit: %d %s", r.Status, r.Body)
	}
	old := testenv.AuthorizationID(t, r.Body)
	ws, _ := st.DueWatches(ctx)
	for _, w := range ws {
		if w.Auth == old {
			if err := st.DropDueWatch(ctx, w.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, _ := e.App.PAS.MarkDeadlines(ctx, 8*24*time.Hour); n != 0 {
		t.Fatalf("an unwatched chain was announced before any backfill: %d", n)
	}
	if _, err := st.BackfillDueWatch(ctx); err != nil {
		t.Fatal(err)
	}
	if !watched(old) {
		t.Fatalf("the backfill did not watch %s", old)
	}
	// As at the next start: every pended chain has its entry already.
	if _, err := st.BackfillDueWatch(ctx); err != nil {
		t.Fatalf("a backfill with the entries in place: %v", err)
	}
	if n, err := e.App.PAS.MarkDeadlines(ctx, 8*24*time.Hour); err != nil || n != 1 {
		t.Fatalf("after the backfill: %d events, %v; want 1", n, err)
	}
}

// The feed writer keeps the feed's last number while it alone holds the
// feed lease: reading it is a sort of the whole feed on the embedded
// engine, and doing that on every poll made each pended request cost more
// than the one before (a soak's CPU per request rose 38 % in five
// minutes). The numbers stay gapless.
func TestFeedWriterKeepsItsPlace(t *testing.T) {
	e := testenv.Start(t, umFast)
	feedFinds := func() int64 { return e.App.Store.CommandsSent("UM events feed", "umFeed", "find") }
	fed := func(n int) []umevents.Event {
		var evs []umevents.Event
		testenv.WaitFor(t, 20*time.Second, fmt.Sprintf("%d events in the feed", n), func() bool {
			r := e.Get("/review/events")
			var p umevents.Page
			if r.Status != http.StatusOK || json.Unmarshal(r.Body, &p) != nil {
				t.Fatalf("feed: %d %s", r.Status, r.Body)
			}
			evs = p.Events
			return len(evs) >= n
		})
		return evs
	}
	submitPended(t, e)
	fed(1)
	before := feedFinds()
	for i := range 4 {
		r := e.Post(submitPath, edit(t, pendedRequest(t), func(b map[string]any) {
			b["identifier"].(map[string]any)["value"] = fmt.Sprintf("keeps-place-%d", i)
		}))
		if r.Status != http.StatusOK {
			t.Fatalf("submit: %d %s", r.Status, r.Body)
		}
		fed(2 + i)
	}
	if got := feedFinds() - before; got != 0 {
		t.Errorf("the feed writer sent %d finds to the feed for 4 more events; want 0 (it keeps the last number)", got)
	}
	for i, ev := range fed(5) {
		if ev.Seq != int64(i+1) {
			t.Errorf("feed[%d] has seq %d, want %d", i, ev.Seq, i+1)
		}
	}
}
