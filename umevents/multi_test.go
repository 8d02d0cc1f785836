package umevents_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/outbound"
	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/store"
	"github.com/priora/priora/umevents"
)

// receiver is a UM system's webhook endpoint: it checks signatures and
// keeps the event ids in the order received.
type receiver struct {
	secret []byte
	mu     sync.Mutex
	ids    []string
	bad    int
}

func (h *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if umevents.Verify(h.secret, r.Header.Get(umevents.HeaderSignature), body, time.Now(), time.Minute) != nil {
		h.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	h.ids = append(h.ids, r.Header.Get(umevents.HeaderEventID))
}

func (h *receiver) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.ids...)
}

// Three processes' workers on one store: every event is in the feed once,
// numbered without gaps or repeats, each deadline is announced once, and
// the webhook gets each event once, in feed order. Replaying the feed
// writer's work (as after a crash between its writes) changes nothing.
func TestWorkersShareOneStore(t *testing.T) {
	opts := umevents.Options{PollInterval: 50 * time.Millisecond, DeadlineEvery: 50 * time.Millisecond,
		DeadlineLead: 8 * 24 * time.Hour, OutboxSlack: time.Hour}
	e := testenv.Start(t, testenv.WithConfig(func(c *app.Config) {
		c.UMEvents = opts
		c.Security.OutboundAllow = []string{"127.0.0.1/32"}
	}))
	secret := []byte("a-secret-of-at-least-thirty-two-bytes!")
	h := &receiver{secret: secret}
	hook := httptest.NewServer(h)
	defer hook.Close()
	e.RegisterClient(store.Client{ID: "um", Org: "payer", Kind: auth.KindPayer, Scopes: []string{auth.ScopeReview},
		Webhook: hook.URL, WebhookSecret: string(secret)}, testenv.LoadKey(t, "auth/ES384.private.json", ""))

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	// The other processes run with the same settings as the server's: a
	// worker whose outbound policy refused the webhook would, when it won
	// the delivery lease, only push the next try back.
	policy, err := outbound.New(outbound.Config{Allow: []string{"127.0.0.1/32"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		svc, err := umevents.New(ctx, umevents.Config{Store: e.App.Store, BaseURL: e.URL, Outbound: policy,
			Deadlines: e.App.PAS.MarkDeadlines, Options: opts})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { svc.Run(ctx) })
	}

	var pwg sync.WaitGroup
	for i := range 4 {
		pwg.Go(func() { e.SubmitApproval(fmt.Sprintf("multi-%d", i)) })
	}
	pwg.Wait()
	// The kit request approves at once: no UM event. Pended ones have two:
	// pend-created, then deadline-approaching (their deadline is within
	// the 8-day lead).
	body := pended(t)
	for i := range 3 {
		var b map[string]any
		json.Unmarshal(body, &b)
		b["identifier"].(map[string]any)["value"] = fmt.Sprintf("multi-pend-%d", i)
		raw, _ := json.Marshal(b)
		if r := e.Post("/fhir/Claim/$submit", raw); r.Status != http.StatusOK {
			t.Fatalf("submit: %d %s", r.Status, r.Body)
		}
	}
	feed := func() []umevents.Event {
		r := e.Get("/review/events?_count=500")
		var p umevents.Page
		if err := json.Unmarshal(r.Body, &p); err != nil {
			t.Fatalf("feed: %d %s", r.Status, r.Body)
		}
		return p.Events
	}
	check := func(evs []umevents.Event) {
		t.Helper()
		seen, kinds := map[string]bool{}, map[string]int{}
		for i, ev := range evs {
			if ev.Seq != int64(i+1) || seen[ev.ID] {
				t.Errorf("feed[%d] = seq %d id %s: want seq %d, each id once", i, ev.Seq, ev.ID, i+1)
			}
			seen[ev.ID] = true
			kinds[ev.Kind]++
		}
		if kinds[store.UMPendCreated] != 3 || kinds[store.UMDeadlineApproaching] != 3 || len(evs) != 6 {
			t.Errorf("feed kinds %v, want 3 pend-created and 3 deadline-approaching", kinds)
		}
	}
	// Generous: under a full CI run a lease taken while its holder's call
	// timed out stays held by no one until it expires (30 s), which delays
	// the feed without losing anything.
	waitOrDump(t, e, 90*time.Second, "six events fed and delivered", func() bool { return len(feed()) >= 6 && len(h.got()) >= 6 },
		func() string { return fmt.Sprintf("feed %d events, webhook got %d", len(feed()), len(h.got())) })
	evs := feed()
	check(evs)
	want := make([]string, len(evs))
	for i, ev := range evs {
		want[i] = ev.ID
	}
	if got := h.got(); fmt.Sprint(got) != fmt.Sprint(want) || h.bad > 0 {
		t.Errorf("webhook got %v (%d bad signatures), want %v: each event once, in feed order", got, h.bad, want)
	}

	// Replay: forget the feed writer's progress and put every event back
	// in the outbox, as if it had crashed before recording either. An
	// event is fed (and may be delivered) before its outbox entry is
	// removed: wait for the outbox to be worked off first.
	db := e.App.Store.DB()
	outboxEmpty := func() bool {
		n, err := db.Collection("umOutbox").CountDocuments(ctx, bson.D{})
		return err == nil && n == 0
	}
	testenv.WaitFor(t, 40*time.Second, "the outbox worked off", outboxEmpty)
	if _, err := db.Collection("umFed").DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if _, err := db.Collection("umOutbox").InsertOne(ctx, bson.D{{Key: "_id", Value: ev.ID}, {Key: "auth", Value: ev.Authorization}, {Key: "created", Value: ev.At}}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 40*time.Second, "the outbox worked off again", outboxEmpty)
	check(feed())
	if got := h.got(); len(got) != 6 {
		t.Errorf("after the replay the webhook got %d events, want still 6", len(got))
	}
}

// pended is the kit request with its items changed to a total knee
// replacement, which the sample rules pend for review.
func pended(t *testing.T) []byte {
	var b map[string]any
	json.Unmarshal(testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json"), &b)
	for _, it := range b["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)["item"].([]any) {
		it.(map[string]any)["productOrService"] = map[string]any{"coding": []any{
			map[string]any{"system": "http://www.ama-assn.org/go/cpt", "code": "27447", "display": "Total knee arthroplasty"}}}
	}
	out, _ := json.Marshal(b)
	return out
}

// waitOrDump is testenv.WaitFor that, on a timeout, says what the workers
// left behind: the outbox, the deadline watch, the leases and each chain's
// status and events.
func waitOrDump(t *testing.T, e *testenv.Env, d time.Duration, what string, cond func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			ctx := context.Background()
			db := e.App.Store.DB()
			dump := func(coll string, filter bson.D, proj bson.D) string {
				if filter == nil {
					filter = bson.D{}
				}
				o := options.Find()
				if proj != nil {
					o.SetProjection(proj)
				}
				cur, err := db.Collection(coll).Find(ctx, filter, o)
				if err != nil {
					return err.Error()
				}
				var docs []bson.M
				if err := cur.All(ctx, &docs); err != nil {
					return err.Error()
				}
				return fmt.Sprint(docs)
			}
			t.Fatalf("timed out after %v waiting for %s: %s\noutbox: %s\ndueWatch: %s\nleases: %s\numFed: %s\numCursors: %s\nchains: %s", d, what, state(),
				dump("umOutbox", nil, nil), dump("dueWatch", nil, nil), dump("leases", nil, nil), dump("umFed", nil, nil), dump("umCursors", nil, nil),
				dump("authorizations", nil, bson.D{{Key: "_id", Value: 1}, {Key: "version", Value: 1}, {Key: "status", Value: 1}, {Key: "dueAt", Value: 1}, {Key: "umEvents", Value: 1}}))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
