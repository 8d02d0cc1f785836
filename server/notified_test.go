package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/priora/priora/internal/testenv"
)

// TestEHRNotifiedStates: the queue tells a reviewer whether the EHR got
// the latest response. The EHR's endpoint accepts the handshake, then
// fails every notification: the decided request shows "failing"; once the
// endpoint recovers, the retry delivers it and it shows "delivered".
func TestEHRNotifiedStates(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	ehr := httptest.NewServer(testenv.CheckedEndpoint(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if failing.Load() && !strings.Contains(string(body), `"handshake"`) {
			http.Error(w, "EHR unavailable", http.StatusServiceUnavailable)
		}
	})))
	t.Cleanup(ehr.Close)
	e := testenv.Start(t, quickDelivery())
	r := e.Post("/fhir/Subscription", subscriptionBody(t, "kit_subscription_resource.json", ehr.URL+"/notify", nil))
	if r.Status != http.StatusCreated {
		t.Fatalf("subscribe: %d %s", r.Status, r.Body)
	}
	sub := decodeSubscription(t, r).ID
	testenv.WaitFor(t, 15*time.Second, "the subscription to become active", func() bool {
		return decodeSubscription(t, e.Get("/fhir/Subscription/"+sub)).Status == "active"
	})

	r = e.Post(submitPath, pendedRequest(t))
	if r.Status != http.StatusOK {
		t.Fatalf("submit: %d %s", r.Status, r.Body)
	}
	id := testenv.AuthorizationID(t, r.Body)
	if r := postDecision(t, e, id, `{"reviewer": `+physician+`, "items": [{"sequence": 1, "action": "approve"}, {"sequence": 2, "action": "approve"}]}`); r.Status != http.StatusOK {
		t.Fatalf("decide: %d %s", r.Status, r.Body)
	}
	notified := func() string {
		for _, tk := range listTasks(t, e, url.Values{"status": {"complete"}}) {
			if tk.ID == id {
				return tk.Notified
			}
		}
		return "(not listed)"
	}
	testenv.WaitFor(t, 15*time.Second, "the queue to show the failing delivery", func() bool { return notified() == "failing" })
	failing.Store(false)
	testenv.WaitFor(t, 15*time.Second, "the queue to show the delivery", func() bool { return notified() == "delivered" })
}
