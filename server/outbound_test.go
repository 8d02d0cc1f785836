package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
)

// The red-team findings on outbound requests (issue 13, items 6-8), each
// reproduced against a Priora with authentication on.

// strictOutbound drops startSecure's allow list entry for its loopback
// receivers: the production default, public https targets only.
func strictOutbound() testenv.Option {
	return testenv.WithConfig(func(c *app.Config) { c.Security.OutboundAllow = nil })
}

// quickDelivery makes failed handshakes turn to error within a second.
func quickDelivery() testenv.Option {
	return testenv.WithConfig(func(c *app.Config) {
		c.Subscriptions.PollInterval = 20 * time.Millisecond
		c.Subscriptions.RetryBase = 50 * time.Millisecond
		c.Subscriptions.RetryCap = 200 * time.Millisecond
	})
}

// subscriptionTo is the kit's good subscription pointed at endpoint.
func subscriptionTo(t *testing.T, endpoint string, edit func(ch map[string]any)) []byte {
	return subscriptionBody(t, "PAS_Subscription_example_v221_good.json", endpoint, func(m map[string]any) {
		delete(m, "id")
		if edit != nil {
			edit(m["channel"].(map[string]any))
		}
	})
}

// issuesOf reads an OperationOutcome's issues.
func issuesOf(t *testing.T, r *testenv.Response) []struct{ Code, Expression, Diagnostics string } {
	t.Helper()
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Code        string   `json:"code"`
			Expression  []string `json:"expression"`
			Diagnostics string   `json:"diagnostics"`
		} `json:"issue"`
	}
	if err := json.Unmarshal(r.Body, &oo); err != nil || oo.ResourceType != "OperationOutcome" {
		t.Fatalf("want an OperationOutcome, got %d %s", r.Status, r.Body)
	}
	var out []struct{ Code, Expression, Diagnostics string }
	for _, is := range oo.Issue {
		out = append(out, struct{ Code, Expression, Diagnostics string }{is.Code, strings.Join(is.Expression, ","), is.Diagnostics})
	}
	return out
}

// countingListener accepts TCP connections on 127.0.0.1 and counts them:
// a connection Priora was not allowed to make shows as a count above 0,
// whatever protocol it would have spoken.
type countingListener struct {
	net.Listener
	accepted atomic.Int32
}

func newCountingListener(t *testing.T) *countingListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &countingListener{Listener: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return l
}

func (l *countingListener) port() string {
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

// loopbackName is a DNS name other than localhost that resolves to
// loopback here (the host's own name usually does), for checks that only
// dial time can make.
func loopbackName(t *testing.T) string {
	h, err := os.Hostname()
	if err == nil {
		if addrs, err := net.LookupHost(h); err == nil && len(addrs) > 0 {
			all := true
			for _, a := range addrs {
				all = all && net.ParseIP(a).IsLoopback()
			}
			if all {
				return h
			}
		}
	}
	t.Skip("no host name resolving to loopback on this machine")
	return ""
}

func TestSubscriptionEndpointRules(t *testing.T) {
	s := startSecure(t, strictOutbound())
	tok := s.Token(s.keyA, clientA, scopesAll)
	own := s.URL + "/admin/audit" // Priora itself, on loopback
	tests := []struct {
		name     string
		body     []byte
		wantExpr string
	}{
		{"Priora's own admin API", subscriptionTo(t, own, nil), "Subscription.channel.endpoint"},
		{"loopback over https", subscriptionTo(t, strings.Replace(own, "http:", "https:", 1), nil), "Subscription.channel.endpoint"},
		{"localhost", subscriptionTo(t, "https://localhost:8080/admin/audit", nil), "Subscription.channel.endpoint"},
		{"IPv4-mapped IPv6 loopback", subscriptionTo(t, "https://[::ffff:127.0.0.1]:8080/", nil), "Subscription.channel.endpoint"},
		{"IPv6 loopback", subscriptionTo(t, "https://[::1]/", nil), "Subscription.channel.endpoint"},
		{"cloud metadata", subscriptionTo(t, "https://169.254.169.254/latest/meta-data/", nil), "Subscription.channel.endpoint"},
		{"RFC 1918", subscriptionTo(t, "https://192.168.0.10/notify", nil), "Subscription.channel.endpoint"},
		{"RFC 4193", subscriptionTo(t, "https://[fd00::10]/notify", nil), "Subscription.channel.endpoint"},
		{"CGNAT", subscriptionTo(t, "https://100.64.1.1/notify", nil), "Subscription.channel.endpoint"},
		{"unspecified", subscriptionTo(t, "https://0.0.0.0:8080/", nil), "Subscription.channel.endpoint"},
		{"plain http with PHI", subscriptionTo(t, "http://ehr.example.org/notify", nil), "Subscription.channel.endpoint"},
		{"Cookie header", subscriptionTo(t, "https://ehr.example.org/notify", func(ch map[string]any) {
			ch["header"] = []any{"Cookie: priora_session=stolen"}
		}), "Subscription.channel.header[0]"},
		{"X-Forwarded-For header", subscriptionTo(t, "https://ehr.example.org/notify", func(ch map[string]any) {
			ch["header"] = []any{"X-Forwarded-For: 127.0.0.1"}
		}), "Subscription.channel.header[0]"},
		{"Host header", subscriptionTo(t, "https://ehr.example.org/notify", func(ch map[string]any) {
			ch["header"] = []any{"Host: internal.admin"}
		}), "Subscription.channel.header[0]"},
		{"Forwarded header", subscriptionTo(t, "https://ehr.example.org/notify", func(ch map[string]any) {
			ch["header"] = []any{"Forwarded: for=10.0.0.1"}
		}), "Subscription.channel.header[0]"},
		{"hop-by-hop header", subscriptionTo(t, "https://ehr.example.org/notify", func(ch map[string]any) {
			ch["header"] = []any{"Connection: close, Authorization"}
		}), "Subscription.channel.header[0]"},
		{"1 s heartbeats", subscriptionTo(t, "https://ehr.example.org/notify", func(ch map[string]any) {
			ch["extension"] = []any{map[string]any{
				"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period", "valueUnsignedInt": 1,
			}}
		}), "Subscription.channel.extension"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.Post("/fhir/Subscription", tt.body, testenv.Bearer(tok)...)
			if r.Status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422: %s", r.Status, r.Body)
			}
			is := issuesOf(t, r)
			if len(is) != 1 || is[0].Expression != tt.wantExpr || is[0].Diagnostics == "" {
				t.Errorf("issues %+v, want one on %s", is, tt.wantExpr)
			}
		})
	}
	// A PUT is held to the same rules.
	r := s.Post("/fhir/Subscription", subscriptionTo(t, "https://ehr.invalid/notify", nil), testenv.Bearer(tok)...)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	id := decodeSubscription(t, r).ID
	put := subscriptionBody(t, "PAS_Subscription_example_v221_good.json", own, func(m map[string]any) { m["id"] = id })
	if r := s.Do(http.MethodPut, "/fhir/Subscription/"+id, put, testenv.Bearer(tok)...); r.Status != http.StatusUnprocessableEntity {
		t.Errorf("PUT to Priora's own admin API: %d, want 422: %s", r.Status, r.Body)
	}
}

// TestSubscriptionDialTimeCheck: a DNS name passes the check at create,
// and its loopback address is refused when dialled — no connection is
// made — with the same error text as any failed delivery.
func TestSubscriptionDialTimeCheck(t *testing.T) {
	name := loopbackName(t)
	ln := newCountingListener(t)
	s := startSecure(t, strictOutbound(), quickDelivery())
	tok := s.Token(s.keyA, clientA, scopesAll)
	r := s.Post("/fhir/Subscription", subscriptionTo(t, "https://"+name+":"+ln.port()+"/admin/audit", nil), testenv.Bearer(tok)...)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	id := decodeSubscription(t, r).ID
	status, errText := waitSubscriptionError(t, s.Env, id, tok)
	if status != "error" || errText != "handshake failed: the endpoint did not accept the notification" {
		t.Errorf("status %q, error %q", status, errText)
	}
	if n := ln.accepted.Load(); n != 0 {
		t.Errorf("Priora connected to %s's loopback address %d times", name, n)
	}
}

// waitSubscriptionError waits until the subscription's status is error
// and returns it with its error text.
func waitSubscriptionError(t *testing.T, e *testenv.Env, id, tok string) (status, errText string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := e.Get("/fhir/Subscription/"+id, testenv.Bearer(tok)...)
		var m struct{ Status, Error string }
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatalf("read subscription: %d %s", r.Status, r.Body)
		}
		if m.Status == "error" || time.Now().After(deadline) {
			return m.Status, m.Error
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDeliveryErrorTellsNothing: Subscription.error read the same for a
// closed port and an endpoint that answers 401, so subscriptions cannot
// scan ports.
func TestDeliveryErrorTellsNothing(t *testing.T) {
	s := startSecure(t, quickDelivery())
	tok := s.Token(s.keyA, clientA, scopesAll)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String() + "/notify"
	closed.Close()
	unauthorized := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	t.Cleanup(unauthorized.Close)
	texts := map[string]string{}
	for name, endpoint := range map[string]string{"closed port": closedURL, "401": unauthorized.URL + "/notify"} {
		r := s.Post("/fhir/Subscription", subscriptionTo(t, endpoint, nil), testenv.Bearer(tok)...)
		if r.Status != http.StatusCreated {
			t.Fatalf("create (%s): %d %s", name, r.Status, r.Body)
		}
		status, text := waitSubscriptionError(t, s.Env, decodeSubscription(t, r).ID, tok)
		if status != "error" {
			t.Fatalf("%s: status %q, want error", name, status)
		}
		texts[name] = text
	}
	if texts["closed port"] != texts["401"] || texts["401"] == "" {
		t.Errorf("Subscription.error tells the endpoints apart: %q", texts)
	}
	for _, leak := range []string{"401", "refused", "connect", "Unauthorized", "dial"} {
		if strings.Contains(texts["401"], leak) {
			t.Errorf("Subscription.error %q says %q", texts["401"], leak)
		}
	}
}

// TestSubscriptionQuota: 20 subscriptions per organization; the 21st is
// refused, other organizations are not affected, and a deletion makes room.
func TestSubscriptionQuota(t *testing.T) {
	s := startSecure(t)
	tokA, tokB := s.Token(s.keyA, clientA, scopesAll), s.Token(s.keyB, clientB, scopesAll)
	ok := okEndpoint(t)
	var ids []string
	for i := range 20 {
		r := s.Post("/fhir/Subscription", subscriptionTo(t, ok, nil), testenv.Bearer(tokA)...)
		if r.Status != http.StatusCreated {
			t.Fatalf("subscription %d: %d %s", i+1, r.Status, r.Body)
		}
		ids = append(ids, decodeSubscription(t, r).ID)
	}
	r := s.Post("/fhir/Subscription", subscriptionTo(t, ok, nil), testenv.Bearer(tokA)...)
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("21st subscription: %d, want 422: %s", r.Status, r.Body)
	}
	if is := issuesOf(t, r); len(is) != 1 || is[0].Code != "too-costly" {
		t.Errorf("issues %+v, want one too-costly", is)
	}
	if got := searchIDs(t, s.Get("/fhir/Subscription", testenv.Bearer(tokA)...)); len(got) != 20 {
		t.Errorf("organization A has %d subscriptions after the refusal, want 20", len(got))
	}
	if r := s.Post("/fhir/Subscription", subscriptionTo(t, ok, nil), testenv.Bearer(tokB)...); r.Status != http.StatusCreated {
		t.Errorf("organization B's first subscription: %d %s", r.Status, r.Body)
	}
	if r := s.Do(http.MethodDelete, "/fhir/Subscription/"+ids[0], nil, testenv.Bearer(tokA)...); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := s.Post("/fhir/Subscription", subscriptionTo(t, ok, nil), testenv.Bearer(tokA)...); r.Status != http.StatusCreated {
		t.Errorf("after a deletion: %d %s", r.Status, r.Body)
	}
}

// tarpit accepts notifications and never answers; it records each
// request in flight until the sender gives up.
type tarpit struct {
	*httptest.Server
	mu       sync.Mutex
	inFlight int
	arrived  chan struct{}
	ended    chan struct{}
}

func newTarpit(t *testing.T) *tarpit {
	tp := &tarpit{arrived: make(chan struct{}, 100), ended: make(chan struct{}, 100)}
	stop := make(chan struct{})
	tp.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices when the sender hangs up
		tp.mu.Lock()
		tp.inFlight++
		tp.mu.Unlock()
		tp.arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
		tp.mu.Lock()
		tp.inFlight--
		tp.mu.Unlock()
		tp.ended <- struct{}{}
	}))
	t.Cleanup(func() { close(stop); tp.Close() })
	return tp
}

func (tp *tarpit) count() int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.inFlight
}

// within waits for one value on c, failing the test after d.
func within(t *testing.T, c <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(d):
		t.Fatalf("%s: nothing within %v", what, d)
	}
}

// TestTarpitTenantDoesNotDelayOthers is the red team's finding 8: four
// subscriptions of organization A pointing at a tarpit (asking for the
// longest timeout) must not delay organization B's handshake; deleting
// A's subscriptions ends their deliveries in flight at once.
func TestTarpitTenantDoesNotDelayOthers(t *testing.T) {
	s := startSecure(t)
	tokA, tokB := s.Token(s.keyA, clientA, scopesAll), s.Token(s.keyB, clientB, scopesAll)
	tp := newTarpit(t)
	var tarpitted []string
	for range 4 {
		r := s.Post("/fhir/Subscription", subscriptionTo(t, tp.URL+"/notify", func(ch map[string]any) {
			ch["extension"] = []any{map[string]any{
				"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-timeout", "valueUnsignedInt": 120,
			}}
		}), testenv.Bearer(tokA)...)
		if r.Status != http.StatusCreated {
			t.Fatalf("A's subscription: %d %s", r.Status, r.Body)
		}
		tarpitted = append(tarpitted, decodeSubscription(t, r).ID)
	}
	within(t, tp.arrived, 5*time.Second, "A's first handshake at the tarpit")

	handshakes := make(chan struct{}, 10)
	rcv := httptest.NewServer(testenv.CheckedEndpoint(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b struct{ Type string }
		_ = json.NewDecoder(r.Body).Decode(&b)
		w.WriteHeader(http.StatusOK)
		handshakes <- struct{}{}
	})))
	t.Cleanup(rcv.Close)
	if r := s.Post("/fhir/Subscription", subscriptionTo(t, rcv.URL+"/notify", nil), testenv.Bearer(tokB)...); r.Status != http.StatusCreated {
		t.Fatalf("B's subscription: %d %s", r.Status, r.Body)
	}
	within(t, handshakes, 5*time.Second, "B's handshake while A's endpoints hang")

	// Deleting A's subscriptions cancels their deliveries in flight, well
	// before the 10 s request timeout would have.
	n := tp.count()
	if n == 0 || n > 2 {
		t.Errorf("%d of A's deliveries in flight, want 1 or 2 (A's share of the workers)", n)
	}
	for _, id := range tarpitted {
		if r := s.Do(http.MethodDelete, "/fhir/Subscription/"+id, nil, testenv.Bearer(tokA)...); r.Status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for tp.count() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries of deleted subscriptions still in flight after 3 s", tp.count())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFHIRServerRules is finding 7: the EHR's bearer token must not go to
// Priora itself, to loopback or private addresses, or over plain http.
func TestFHIRServerRules(t *testing.T) {
	s := startSecure(t, strictOutbound())
	ln := newCountingListener(t)
	body := func(fhirServer string) []byte {
		var m map[string]any
		if err := json.Unmarshal(testenv.Fixture(t, "crd/ig/CRDServiceRequest3.json"), &m); err != nil {
			t.Fatal(err)
		}
		m["fhirServer"] = fhirServer // nothing is prefetched: Priora must query it
		b, _ := json.Marshal(m)
		return b
	}
	call := func(b []byte) *testenv.Response {
		jwt := s.hookJWT(t, s.inferno, s.URL+"/cds-services/order-sign-crd", nil)
		return s.Post("/cds-services/order-sign-crd", b, "Content-Type", "application/json", "Authorization", "Bearer "+jwt)
	}
	loop := "http://127.0.0.1:" + ln.port()
	for _, tt := range []struct{ name, fhirServer string }{
		{"Priora's own admin API", s.URL + "/admin"},
		{"Priora's review API with a query", s.URL + "/review/tasks?status=all#x"},
		{"loopback over http", loop + "/fhir"},
		{"loopback over https", strings.Replace(loop, "http:", "https:", 1) + "/fhir"},
		{"IPv4-mapped loopback", "https://[::ffff:127.0.0.1]:" + ln.port() + "/fhir"},
		{"link-local", "https://169.254.169.254/fhir"},
		{"private", "https://10.0.0.8/fhir"},
		{"plain http", "http://ehr.example.org/fhir"},
		{"query", "https://ehr.example.org/fhir?_format=json"},
		{"fragment", "https://ehr.example.org/fhir#frag"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := call(body(tt.fhirServer))
			if r.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
			}
			var m map[string]any
			if err := json.Unmarshal(r.Body, &m); err != nil || m["error"] == nil || !strings.Contains(fmt.Sprint(m["error"]), "fhirServer") {
				t.Errorf("want a CDS Hooks error about fhirServer, got %s", r.Body)
			}
		})
	}
	t.Run("complete prefetch: answered, fhirServer never contacted", func(t *testing.T) {
		var m map[string]any
		if err := json.Unmarshal(testenv.Fixture(t, "crd/ig/CRDServiceRequest.json"), &m); err != nil {
			t.Fatal(err)
		}
		m["fhirServer"] = loop + "/fhir"
		b, _ := json.Marshal(m)
		if r := call(b); r.Status != http.StatusOK {
			t.Errorf("status %d: %s", r.Status, r.Body)
		}
	})
	if n := ln.accepted.Load(); n != 0 {
		t.Errorf("Priora connected to the loopback listener %d times", n)
	}
	t.Run("DNS name of loopback: refused when dialled", func(t *testing.T) {
		name := loopbackName(t)
		r := call(body("https://" + name + ":" + ln.port() + "/fhir"))
		if r.Status != http.StatusOK {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		if n := ln.accepted.Load(); n != 0 {
			t.Errorf("Priora connected to %s (loopback) %d times with the EHR's token", name, n)
		}
	})
}
