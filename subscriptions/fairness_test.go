package subscriptions_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
)

// TestCircuitBreaker: after BreakerFailures failed deliveries in a row to
// one endpoint, the others to it fail without a request.
func TestCircuitBreaker(t *testing.T) {
	var hits atomic.Int32
	failing := httptest.NewServer(testenv.CheckedEndpoint(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	})))
	t.Cleanup(failing.Close)
	e := start(t, testenv.WithConfig(func(c *app.Config) {
		c.Subscriptions.BreakerFailures = 2
		c.Subscriptions.BreakerCooldown = time.Hour
	}))
	var ids []string
	for range 3 {
		ids = append(ids, subscribe(t, e, failing.URL+"/notify", "org-identifier=8189991234"))
	}
	for _, id := range ids {
		waitStatus(t, e, id, "error")
	}
	// Three subscriptions with two handshake attempts each: six deliveries.
	// Two failures open the breaker; a request allowed while it was still
	// closed (at most one per subscription, when their handshakes overlap)
	// goes out too, so two or three reach the endpoint, never more.
	if n := hits.Load(); n < 2 || n > 3 {
		t.Errorf("the failing endpoint got %d requests, want the 2 that opened the breaker (3 when the handshakes overlapped)", n)
	}
	// Another endpoint is not affected.
	rcv := newReceiver(t)
	waitStatus(t, e, subscribe(t, e, rcv.URL(), "org-identifier=8189991234"), "active")
}
