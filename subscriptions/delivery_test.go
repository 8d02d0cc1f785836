package subscriptions_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/priora/priora/conformance/check"
	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/store"
	"github.com/priora/priora/subscriptions"
)

// subscribe creates a subscription from the kit's preset resource, pointed
// at endpoint with the given filter, and returns its id.
func subscribe(t *testing.T, e *testenv.Env, endpoint, filter string, edit ...func(ch map[string]any)) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(testenv.Fixture(t, "subscriptions/kit_subscription_resource.json"), &m); err != nil {
		t.Fatal(err)
	}
	ch := m["channel"].(map[string]any)
	ch["endpoint"] = endpoint
	m["_criteria"].(map[string]any)["extension"].([]any)[0].(map[string]any)["valueString"] = filter
	for _, f := range edit {
		f(ch)
	}
	body, _ := json.Marshal(m)
	r := e.With(t).Post("/fhir/Subscription", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create subscription: %d %s", r.Status, r.Body)
	}
	got := r.JSON(t)
	if got["status"] != "requested" {
		t.Errorf("created subscription status = %v, want requested", got["status"])
	}
	return got["id"].(string)
}

// waitDelivered waits until the subscription's n notifications are all
// marked delivered in the store: after that no process has one to send,
// so the receiver's count is final.
func waitDelivered(t *testing.T, e *testenv.Env, sub string, n int) {
	t.Helper()
	ctx := context.Background()
	subs, err := e.App.Store.Subscriptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("%d notifications delivered", n), func() bool {
		last, err := subs.LastSeq(ctx, sub)
		if err != nil || last < n {
			return false
		}
		pending, err := subs.Pending(ctx, sub, 1)
		return err == nil && len(pending) == 0
	})
}

// addEvent announces the authorization's current response again, as a
// decision would, and returns the event's number.
func addEvent(t *testing.T, st *store.Store, authID string) int {
	t.Helper()
	ctx := context.Background()
	for range 10 {
		a, err := st.Authorization(ctx, "", authID)
		if err != nil {
			t.Fatal(err)
		}
		a.AddEvent(a.CurrentResponse().Number, time.Now().UTC())
		err = st.UpdateAuthorization(ctx, a)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return len(a.Events)
	}
	t.Fatal("addEvent: conflicts every time")
	return 0
}

func subscriptionStatus(t *testing.T, e *testenv.Env, id string) (status, errText string) {
	t.Helper()
	r := e.With(t).Get("/fhir/Subscription/" + id)
	if r.Status != http.StatusOK {
		t.Fatalf("read subscription: %d %s", r.Status, r.Body)
	}
	m := r.JSON(t)
	s, _ := m["status"].(string)
	er, _ := m["error"].(string)
	return s, er
}

func waitStatus(t *testing.T, e *testenv.Env, id, want string) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, "subscription status "+want, func() bool {
		s, _ := subscriptionStatus(t, e, id)
		return s == want
	})
}

// shape is what the backport and PAS fix about a notification Bundle.
type shape struct {
	Type    string
	Profile []string
	Entries []entryShape
	Params  []string
}

type entryShape struct {
	FullURL, Request, Response bool
	ResourceType               string
}

func shapeOf(t *testing.T, raw []byte) shape {
	t.Helper()
	var n notification
	if err := json.Unmarshal(raw, &n); err != nil {
		t.Fatal(err)
	}
	s := shape{Type: n.Type, Profile: n.Meta.Profile}
	for i, e := range n.Entry {
		var head struct {
			ResourceType string  `json:"resourceType"`
			Parameter    []param `json:"parameter"`
		}
		if err := json.Unmarshal(e.Resource, &head); err != nil {
			t.Fatal(err)
		}
		s.Entries = append(s.Entries, entryShape{FullURL: e.FullURL != "", Request: e.Request != nil, Response: e.Response != nil, ResourceType: head.ResourceType})
		if i > 0 {
			continue
		}
		for _, p := range head.Parameter {
			if len(p.Part) == 0 {
				s.Params = append(s.Params, p.Name)
			}
			for _, part := range p.Part {
				if part.Name != "additional-context" { // optional; Priora sends none
					s.Params = append(s.Params, p.Name+"."+part.Name)
				}
			}
		}
	}
	return s
}

func TestHandshakeAndEventNotifications(t *testing.T) {
	rcv := newReceiver(t)
	e := start(t)
	id := subscribe(t, e, rcv.URL(), "org-identifier=8189991234")

	// The handshake: shaped like the subscriptions kit's example.
	testenv.WaitFor(t, 10*time.Second, "the handshake", func() bool { return len(rcv.ofType(t, "handshake")) > 0 })
	hs := rcv.ofType(t, "handshake")[0]
	if diff := cmp.Diff(shapeOf(t, testenv.Fixture(t, "subscriptions/handshake_bundle_example.json")), shapeOf(t, hs.Body)); diff != "" {
		t.Errorf("handshake shape (-kit example +got):\n%s", diff)
	}
	subURL := e.URL + "/fhir/Subscription/" + id
	wantHS := status{Subscription: subURL, Topic: subscriptions.Topic, Status: "requested", Type: "handshake", Events: "0"}
	if diff := cmp.Diff(wantHS, hs.Note.status(t)); diff != "" {
		t.Errorf("handshake status (-want +got):\n%s", diff)
	}
	if got := hs.Note.Entry[0].Request.URL; got != subURL+"/$status" {
		t.Errorf("handshake status entry request.url = %s, want %s/$status", got, subURL)
	}
	waitStatus(t, e, id, "active")

	// Two events on one authorization.
	auth := e.With(t).SubmitApproval("sub-events-1")
	addEvent(t, e.App.Store, auth)
	addEvent(t, e.App.Store, auth)
	got := rcv.waitEvents(t, 2)
	if diff := cmp.Diff([]int{1, 2}, eventNumbers(t, got)); diff != "" {
		t.Errorf("event numbers (-want +got):\n%s", diff)
	}

	a, err := e.App.Store.Authorization(context.Background(), "", auth)
	if err != nil {
		t.Fatal(err)
	}
	wantShape := shapeOf(t, testenv.Fixture(t, "subscriptions/PAS_notification_example_full_resource.json"))
	wantShape.Entries = []entryShape{
		{FullURL: true, Request: true, Response: true, ResourceType: "Parameters"},
		{FullURL: true, Request: true, Response: true, ResourceType: "Bundle"},
	}
	for i, g := range got {
		t.Run("event "+strconv.Itoa(i+1), func(t *testing.T) {
			if diff := cmp.Diff(wantShape, shapeOf(t, g.Body)); diff != "" {
				t.Errorf("notification shape (-want +got):\n%s", diff)
			}
			st := g.Note.status(t)
			n := strconv.Itoa(i + 1)
			if st.Subscription != subURL || st.Topic != subscriptions.Topic || st.Status != "active" || st.Type != "event-notification" ||
				st.Events != n || st.EventNumber != n {
				t.Errorf("status = %+v, want active event-notification %s of %s", st, n, subURL)
			}
			if _, err := time.Parse(time.RFC3339, st.EventTimestamp); err != nil {
				t.Errorf("notification-event timestamp %q: %v", st.EventTimestamp, err)
			}
			if st.Focus != g.Note.Entry[1].FullURL || !strings.HasPrefix(st.Focus, "urn:uuid:") {
				t.Errorf("focus %q does not point at entry[1] (%q)", st.Focus, g.Note.Entry[1].FullURL)
			}
			// The focus is the full PAS Response Bundle, as stored.
			var want, have any
			_ = json.Unmarshal([]byte(a.CurrentResponse().JSON), &want)
			_ = json.Unmarshal(g.Note.Entry[1].Resource, &have)
			if diff := cmp.Diff(want, have); diff != "" {
				t.Errorf("entry[1] is not the PAS response (-want +got):\n%s", diff)
			}
			if ct := g.Header.Get("Content-Type"); ct != "application/fhir+json" {
				t.Errorf("Content-Type = %q, want channel.payload application/fhir+json", ct)
			}
			if h := g.Header.Get("Authorization"); h != "Bearer demo_execution" {
				t.Errorf("Authorization header = %q, want the channel.header value", h)
			}
		})
	}

	// $status counts the events.
	r := e.Get("/fhir/Subscription/" + id + "/$status")
	if r.Status != http.StatusOK {
		t.Fatalf("$status: %d %s", r.Status, r.Body)
	}
	var sb notification
	if err := json.Unmarshal(r.Body, &sb); err != nil {
		t.Fatal(err)
	}
	if sb.Type != "searchset" || len(sb.Entry) != 1 {
		t.Fatalf("$status: want a searchset with one entry, got %s", r.Body)
	}
	wantQS := status{Subscription: subURL, Topic: subscriptions.Topic, Status: "active", Type: "query-status", Events: "2"}
	if diff := cmp.Diff(wantQS, sb.status(t)); diff != "" {
		t.Errorf("$status (-want +got):\n%s", diff)
	}
}

func TestHandshakeFailureSetsError(t *testing.T) {
	rcv := newReceiver(t)
	rcv.down.Store(true)
	e := start(t)
	id := subscribe(t, e, rcv.URL(), "org-identifier=8189991234")
	waitStatus(t, e, id, "error")
	if _, msg := subscriptionStatus(t, e, id); !strings.Contains(msg, "handshake failed") {
		t.Errorf("Subscription.error = %q, want it to say the handshake failed", msg)
	}
	// Events still count while the subscription is in error, and a PUT
	// that fixes the channel handshakes again and delivers them.
	auth := e.With(t).SubmitApproval("sub-hs-fail")
	addEvent(t, e.App.Store, auth)
	testenv.WaitFor(t, 10*time.Second, "the event to be counted", func() bool {
		r := e.Get("/fhir/Subscription/" + id + "/$status")
		return strings.Contains(string(r.Body), `"name":"events-since-subscription-start","valueString":"1"`)
	})
	rcv.down.Store(false)
	r := e.Get("/fhir/Subscription/" + id)
	if r := e.Do(http.MethodPut, "/fhir/Subscription/"+id, r.Body); r.Status != http.StatusOK {
		t.Fatalf("PUT: %d %s", r.Status, r.Body)
	}
	waitStatus(t, e, id, "active")
	got := rcv.waitEvents(t, 1)
	if diff := cmp.Diff([]int{1}, eventNumbers(t, got)); diff != "" {
		t.Errorf("event numbers (-want +got):\n%s", diff)
	}
}

func TestHeartbeat(t *testing.T) {
	rcv := newReceiver(t)
	e := start(t)
	id := subscribe(t, e, rcv.URL(), "org-identifier=8189991234", func(ch map[string]any) {
		ch["extension"] = append(ch["extension"].([]any), map[string]any{
			"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period", "valueUnsignedInt": 1,
		})
	})
	testenv.WaitFor(t, 10*time.Second, "two heartbeats", func() bool { return len(rcv.ofType(t, "heartbeat")) >= 2 })
	hb := rcv.ofType(t, "heartbeat")
	want := status{Subscription: e.URL + "/fhir/Subscription/" + id, Topic: subscriptions.Topic, Status: "active", Type: "heartbeat", Events: "0"}
	if diff := cmp.Diff(want, hb[0].Note.status(t)); diff != "" {
		t.Errorf("heartbeat (-want +got):\n%s", diff)
	}
	if len(hb[0].Note.Entry) != 1 || hb[0].Header.Get("Authorization") != "Bearer demo_execution" {
		t.Errorf("heartbeat: %d entries, Authorization %q; want 1 and the channel header", len(hb[0].Note.Entry), hb[0].Header.Get("Authorization"))
	}
	// Heartbeats keep their period: two in a row are about a second apart.
	t0, _ := time.Parse(time.RFC3339, hb[0].Note.Timestamp)
	t1, _ := time.Parse(time.RFC3339, hb[1].Note.Timestamp)
	if d := t1.Sub(t0); d < 800*time.Millisecond {
		t.Errorf("heartbeats %v apart, want about the 1s period", d)
	}
}

func TestOutageThenCatchUpInOrder(t *testing.T) {
	rcv := newReceiver(t)
	e := start(t)
	id := subscribe(t, e, rcv.URL(), "org-identifier=INTER-SND-0001") // the ISA06 sender id
	waitStatus(t, e, id, "active")
	a1 := e.With(t).SubmitApproval("outage-1")
	addEvent(t, e.App.Store, a1)
	rcv.waitEvents(t, 1)

	rcv.down.Store(true)
	a2 := e.With(t).SubmitApproval("outage-2")
	addEvent(t, e.App.Store, a2)
	addEvent(t, e.App.Store, a1)
	addEvent(t, e.App.Store, a2)
	waitStatus(t, e, id, "error")
	if _, msg := subscriptionStatus(t, e, id); !strings.Contains(msg, "delivery failed") {
		t.Errorf("Subscription.error = %q during the outage", msg)
	}
	refused := rcv.refused.Load()
	testenv.WaitFor(t, 10*time.Second, "two more failed delivery attempts", func() bool { return rcv.refused.Load() >= refused+2 })
	rcv.down.Store(false)

	got := rcv.waitEvents(t, 4)
	if diff := cmp.Diff([]int{1, 2, 3, 4}, eventNumbers(t, got)); diff != "" {
		t.Errorf("event numbers after the outage (-want +got):\n%s", diff)
	}
	var auths []string
	for _, g := range got {
		auths = append(auths, g.Note.Entry[1].FullURL)
	}
	if auths[1] != auths[3] || auths[0] == auths[1] {
		t.Errorf("events out of order: focus sequence %v", auths)
	}
	waitStatus(t, e, id, "active")
}

func TestFiltersAndTenants(t *testing.T) {
	rcv, other := newReceiver(t), newReceiver(t)
	e := start(t)
	match := subscribe(t, e, rcv.URL(), "orgIdentifier=0000000000,http://hl7.org/fhir/sid/us-npi|8189991234")
	miss := subscribe(t, e, other.URL(), "org-identifier=0000000000")
	waitStatus(t, e, match, "active")
	waitStatus(t, e, miss, "active")

	// Another tenant's request for the same provider reaches neither.
	raw := testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json")
	ans, err := e.App.PAS.Submit(context.Background(), pas.Caller{Tenant: "other", Client: "c2"}, raw)
	if err != nil {
		t.Fatal(err)
	}
	addEvent(t, e.App.Store, ans.Authorization)
	mine := e.With(t).SubmitApproval("filters-1")
	addEvent(t, e.App.Store, mine)

	got := rcv.waitEvents(t, 1)
	// Once both authorizations' events are fanned out, no subscription can
	// gain a notification for them: count what each was given.
	ctx := context.Background()
	subs, err := e.App.Store.Subscriptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "both events fanned out", func() bool {
		done, err := subs.Dispatched(ctx, []string{ans.Authorization, mine})
		return err == nil && done[ans.Authorization] >= 1 && done[mine] >= 1
	})
	for _, c := range []struct {
		id   string
		want int
	}{{match, 1}, {miss, 0}} {
		if n, err := subs.LastSeq(ctx, c.id); err != nil || n != c.want {
			t.Errorf("subscription %s was given %d events (%v), want %d", c.id, n, err, c.want)
		}
	}
	if n := len(other.ofType(t, "event-notification")); n != 0 {
		t.Errorf("non-matching subscription got %d events, want 0", n)
	}
	if id := testenv.AuthorizationID(t, got[0].Note.Entry[1].Resource); id != mine {
		t.Errorf("event is about authorization %s, want %s", id, mine)
	}

	// Other tenants can neither see nor change the subscription.
	svc := e.App.Subscriptions
	stranger := subscriptions.Owner{Tenant: "other", Client: "c2"}
	if _, err := svc.Read(ctx, stranger, match); err == nil || !strings.Contains(err.Error(), "not known") {
		t.Errorf("read by another tenant: %v, want not found", err)
	}
	if err := svc.Delete(ctx, stranger, match); err == nil {
		t.Errorf("delete by another tenant succeeded")
	}
	body, err := svc.Search(ctx, stranger, subscriptions.Query{})
	if err != nil || strings.Contains(string(body), match) {
		t.Errorf("search by another tenant: %v, found %s", err, body)
	}
	var doc store.Subscription
	if err := e.App.Store.DB().Collection("subscriptions").FindOne(ctx, bson.D{{Key: "_id", Value: match}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Tenant != "default" || doc.Client != "anonymous" {
		t.Errorf("owner recorded as %s/%s, want default/anonymous", doc.Tenant, doc.Client)
	}
}

// sharedStore starts an embedded store for several Priora processes.
func sharedStore(t *testing.T) string {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	uri, _ := st.Embedded()
	return uri
}

func onStore(uri string) testenv.Option {
	return testenv.WithConfig(func(c *app.Config) { c.MongoURI = uri })
}

func TestTwoProcessesDeliverEachEventOnce(t *testing.T) {
	uri := sharedStore(t)
	rcv := newReceiver(t)
	p1, p2 := start(t, onStore(uri)), start(t, onStore(uri))
	id := subscribe(t, p1, rcv.URL(), "org-identifier=8189991234")
	waitStatus(t, p2, id, "active")

	a1, a2 := p1.With(t).SubmitApproval("two-proc-1"), p2.With(t).SubmitApproval("two-proc-2")
	for range 4 {
		addEvent(t, p1.App.Store, a1)
		addEvent(t, p2.App.Store, a2)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("p1 log:\n%s\np2 log:\n%s", p1.Logs, p2.Logs)
		}
	})
	rcv.waitEvents(t, 8)
	waitDelivered(t, p1, id, 8)
	got := rcv.ofType(t, "event-notification")
	if diff := cmp.Diff([]int{1, 2, 3, 4, 5, 6, 7, 8}, eventNumbers(t, got)); diff != "" {
		t.Errorf("event numbers (-want +got):\n%s", diff)
	}
	if n := len(rcv.ofType(t, "handshake")); n != 1 {
		t.Errorf("%d handshakes, want 1", n)
	}
}

func TestKilledProcessMidDeliveryOtherFinishes(t *testing.T) {
	uri := sharedStore(t)
	rcv := newReceiver(t)
	p1 := start(t, onStore(uri))
	id := subscribe(t, p1, rcv.URL(), "org-identifier=8189991234")
	waitStatus(t, p1, id, "active")

	rcv.mu.Lock()
	rcv.hold = make(chan struct{})
	rcv.mu.Unlock()
	auth := p1.With(t).SubmitApproval("kill-1")
	addEvent(t, p1.App.Store, auth)
	<-rcv.held // p1 is delivering event 1 and waits for the answer

	p2 := start(t, onStore(uri))
	p1.Stop() // p1 dies mid-delivery
	testenv.WaitFor(t, 10*time.Second, "the receiver to see p1's delivery abandoned", func() bool { return rcv.dropped.Load() >= 1 })
	rcv.mu.Lock()
	close(rcv.hold)
	rcv.hold = nil
	rcv.mu.Unlock()

	rcv.waitEvents(t, 1)
	waitDelivered(t, p2, id, 1)
	if diff := cmp.Diff([]int{1}, eventNumbers(t, rcv.ofType(t, "event-notification"))); diff != "" {
		t.Errorf("event numbers (-want +got):\n%s", diff)
	}
	waitStatus(t, p2, id, "active")
}

func TestCrashedLeaseExpires(t *testing.T) {
	rcv := newReceiver(t)
	e := start(t)
	id := subscribe(t, e, rcv.URL(), "org-identifier=8189991234")
	waitStatus(t, e, id, "active")

	// A worker of a process that crashed holds the subscription's lease.
	ss, err := e.App.Store.Subscriptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(1500 * time.Millisecond)
	testenv.WaitFor(t, 5*time.Second, "the lease", func() bool {
		_, err := ss.Acquire(context.Background(), id, "crashed", time.Now(), until)
		return err == nil
	})
	auth := e.With(t).SubmitApproval("crash-1")
	addEvent(t, e.App.Store, auth)
	got := rcv.waitEvents(t, 1)
	if got[0].At.Before(until) {
		t.Errorf("event delivered at %s, %v before the crashed owner's lease expired", got[0].At.Format(time.RFC3339Nano), until.Sub(got[0].At))
	}
}

func TestRestartResumesDelivery(t *testing.T) {
	rcv := newReceiver(t)
	e := start(t)
	id := subscribe(t, e, rcv.URL(), "org-identifier=8189991234")
	waitStatus(t, e, id, "active")
	rcv.down.Store(true)
	auth := e.With(t).SubmitApproval("restart-1")
	addEvent(t, e.App.Store, auth)
	addEvent(t, e.App.Store, auth)
	waitStatus(t, e, id, "error")

	e.Stop()
	rcv.down.Store(false)
	e.Restart()
	got := rcv.waitEvents(t, 2)
	if diff := cmp.Diff([]int{1, 2}, eventNumbers(t, got)); diff != "" {
		t.Errorf("event numbers after restart (-want +got):\n%s", diff)
	}
}

// TestDelayedDecisionNotifies is the whole way: a pended $submit, the
// delayed rule's decision made by the pas finisher, and the notification
// carrying the final PAS response.
func TestDelayedDecisionNotifies(t *testing.T) {
	const rules = `version: 1
defaults:
  unknownCode: pend
  authorizationDays: 180
rules:
  - id: consult-delayed
    description: consultations pend, then a rule decides
    category: professional
    match:
      codes:
        - system: https://codesystem.x12.org/005010/1365
          codes: ["3"]
    decision:
      action: pend
      reason: review
      after: 1s
      then: %s
`
	for _, tt := range []struct{ then, want string }{{"approve", "A1"}, {"deny", "A3"}} {
		t.Run(tt.then, func(t *testing.T) {
			rcv := newReceiver(t)
			e := start(t, testenv.WithRules(strings.Replace(rules, "%s", tt.then, 1)))
			id := subscribe(t, e, rcv.URL(), "org-identifier=8189991234")
			waitStatus(t, e, id, "active")
			e.With(t).SubmitApproval("delayed-" + tt.then)
			got := rcv.waitEvents(t, 1)
			if diff := cmp.Diff([]int{1}, eventNumbers(t, got)); diff != "" {
				t.Errorf("event numbers (-want +got):\n%s", diff)
			}
			resp, err := check.Decode(got[0].Note.Entry[1].Resource)
			if err != nil || check.Str(resp, "type") != "collection" {
				t.Fatalf("focus is not a collection Bundle (%v)", err)
			}
			r, err := check.ReadPAS(resp)
			if err != nil {
				t.Fatalf("focus is not a PAS Response Bundle: %v", err)
			}
			var codes []string
			for _, it := range r.Items {
				codes = append(codes, it.ReviewAction)
			}
			if diff := cmp.Diff([]string{tt.want}, slices.Compact(codes)); diff != "" {
				t.Errorf("review action codes in the notified response (-want +got):\n%s", diff)
			}
		})
	}
}
