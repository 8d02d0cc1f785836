package subscriptions_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
)

// receiver is a notification endpoint on 127.0.0.1 that records what it
// accepted. While down it aborts every connection; with hold set it keeps
// event notifications waiting until hold is closed.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	down    atomic.Bool
	refused atomic.Int64 // requests dropped while down
	dropped atomic.Int64 // held requests the sender gave up on

	mu      sync.Mutex
	got     []*received
	hold    chan struct{}
	held    chan struct{} // receives once per request that starts waiting on hold
	arrived chan struct{}
}

type received struct {
	Header http.Header
	Body   []byte
	Note   notification
	At     time.Time // when the receiver accepted it
}

// notification is the part of a backport notification Bundle tests read.
type notification struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Timestamp    string `json:"timestamp"`
	Meta         struct {
		Profile []string `json:"profile"`
	} `json:"meta"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  *struct {
			Method string `json:"method"`
			URL    string `json:"url"`
		} `json:"request"`
		Response *struct {
			Status string `json:"status"`
		} `json:"response"`
	} `json:"entry"`
}

// param is one Parameters.parameter, with the value types the backport uses.
type param struct {
	Name           string `json:"name"`
	ValueString    string `json:"valueString,omitempty"`
	ValueCode      string `json:"valueCode,omitempty"`
	ValueCanonical string `json:"valueCanonical,omitempty"`
	ValueInstant   string `json:"valueInstant,omitempty"`
	ValueReference *struct {
		Reference string `json:"reference"`
	} `json:"valueReference,omitempty"`
	Part []param `json:"part,omitempty"`
}

// status is the SubscriptionStatus of a notification, flattened.
type status struct {
	Subscription, Topic, Status, Type, Events string
	EventNumber, EventTimestamp, Focus        string
}

func (n *notification) status(t *testing.T) status {
	t.Helper()
	if len(n.Entry) == 0 {
		t.Fatalf("notification has no entries")
	}
	var p struct {
		ResourceType string  `json:"resourceType"`
		Parameter    []param `json:"parameter"`
	}
	if err := json.Unmarshal(n.Entry[0].Resource, &p); err != nil || p.ResourceType != "Parameters" {
		t.Fatalf("entry[0] is not a Parameters: %v %s", err, n.Entry[0].Resource)
	}
	var s status
	for _, q := range p.Parameter {
		switch q.Name {
		case "subscription":
			s.Subscription = q.ValueReference.Reference
		case "topic":
			s.Topic = q.ValueCanonical
		case "status":
			s.Status = q.ValueCode
		case "type":
			s.Type = q.ValueCode
		case "events-since-subscription-start":
			s.Events = q.ValueString
		case "notification-event":
			for _, part := range q.Part {
				switch part.Name {
				case "event-number":
					s.EventNumber = part.ValueString
				case "timestamp":
					s.EventTimestamp = part.ValueInstant
				case "focus":
					s.Focus = part.ValueReference.Reference
				}
			}
		}
	}
	return s
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, arrived: make(chan struct{}, 1000), held: make(chan struct{}, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.close)
	return r
}

func (r *receiver) close() {
	r.mu.Lock()
	if r.hold != nil {
		close(r.hold)
		r.hold = nil
	}
	r.mu.Unlock()
	r.srv.Close()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	if r.down.Load() {
		r.refused.Add(1)
		panic(http.ErrAbortHandler) // the connection drops, as if nobody listened
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	testenv.CheckNotification(r.t, body)
	got := &received{Header: req.Header.Clone(), Body: body}
	if err := json.Unmarshal(body, &got.Note); err != nil {
		r.t.Errorf("notification is not JSON: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	hold := r.hold
	r.mu.Unlock()
	if hold != nil && got.Note.Type == "history" && len(got.Note.Entry) > 1 {
		r.held <- struct{}{}
		select {
		case <-hold:
		case <-req.Context().Done():
			r.dropped.Add(1)
			return // the sender gave up (or died): not received
		}
	}
	r.mu.Lock()
	got.At = time.Now()
	r.got = append(r.got, got)
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
	r.arrived <- struct{}{}
}

// URL is the endpoint for subscriptions.
func (r *receiver) URL() string { return r.srv.URL + "/notify" }

// received returns what the receiver accepted so far, in arrival order.
func (r *receiver) received() []*received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*received(nil), r.got...)
}

// ofType returns the accepted notifications of a SubscriptionStatus type.
func (r *receiver) ofType(t *testing.T, typ string) []*received {
	var out []*received
	for _, g := range r.received() {
		if g.Note.status(t).Type == typ {
			out = append(out, g)
		}
	}
	return out
}

// waitEvents waits until the receiver accepted n event notifications.
func (r *receiver) waitEvents(t *testing.T, n int) []*received {
	t.Helper()
	var got []*received
	testenv.WaitFor(t, 20*time.Second, fmt.Sprintf("%d event notifications", n), func() bool {
		got = r.ofType(t, "event-notification")
		return len(got) >= n
	})
	return got
}

// eventNumbers lists the event-number of each event notification.
func eventNumbers(t *testing.T, got []*received) []int {
	var out []int
	for _, g := range got {
		n, err := strconv.Atoi(g.Note.status(t).EventNumber)
		if err != nil {
			t.Fatalf("event-number %q: %v", g.Note.status(t).EventNumber, err)
		}
		out = append(out, n)
	}
	return out
}

// fast makes delivery quick enough for tests.
func fast(c *app.Config) {
	c.Subscriptions.PollInterval = 20 * time.Millisecond
	c.Subscriptions.RetryBase = 50 * time.Millisecond
	c.Subscriptions.RetryCap = 300 * time.Millisecond
	c.Subscriptions.Lease = time.Second
	c.Subscriptions.Timeout = 3 * time.Second
	c.Subscriptions.HandshakeAttempts = 2
	c.Subscriptions.MinHeartbeat = time.Second
}

func start(t *testing.T, opts ...testenv.Option) *testenv.Env {
	return testenv.Start(t, append([]testenv.Option{testenv.WithConfig(fast)}, opts...)...)
}
