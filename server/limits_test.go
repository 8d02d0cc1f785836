package server_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
)

// TestSubmitCostLimits is #13's finding 5 (one $submit of many tiny JSON
// values took a thousand times its size in memory) and 12 (duplicate
// member names and lone surrogates passed): each is refused by the scan
// before any parse, with an OperationOutcome naming the limit or the
// place, and nothing is stored.
func TestSubmitCostLimits(t *testing.T) {
	s := startSecure(t)
	tok := s.Token(s.keyA, clientA, scopesAll)
	good := string(testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json"))
	bundle := func(entries string) []byte {
		return []byte(`{"resourceType":"Bundle","type":"collection","identifier":{"value":"x"},"entry":[` + entries + `]}`)
	}
	tests := []struct {
		name       string
		body       []byte
		status     int
		expression string
		diagnostic string
	}{
		{"a Bundle of empty entries", bundle(strings.TrimSuffix(strings.Repeat("{},", 5000), ",")), 413, "Bundle.entry", "PRIORA_MAX_ENTRIES"},
		{"a long array", bundle(`{"resource":{"resourceType":"Basic","extension":[` + strings.TrimSuffix(strings.Repeat("{},", 20000), ",") + `]}}`), 413,
			"Bundle.entry[0].resource.extension", "PRIORA_MAX_ARRAY"},
		{"too many values", bundle(strings.TrimSuffix(strings.Repeat(`{"resource":{"resourceType":"Basic","extension":[`+strings.Repeat("{},", 99)+`{}]}},`, 600), ",")), 413,
			"", "PRIORA_MAX_JSON_VALUES"},
		{"a repeated member name", []byte(strings.Replace(good, `"use": "preauthorization"`, `"use": "preauthorization", "use": "claim"`, 1)), 400,
			"Bundle.entry[0].resource.use", `"use" appears twice`},
		{"a lone surrogate", []byte(strings.Replace(good, `"use": "preauthorization"`, `"use": "preauthorization\ud800"`, 1)), 400,
			"Bundle.entry[0].resource.use", "unpaired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Contains(tt.body, []byte("use")) && tt.status == 400 {
				t.Fatal("the fixture changed: the edit did not apply")
			}
			before := countAuthorizations(t, s.Env)
			r := s.Post(submitPath, tt.body, testenv.Bearer(tok)...)
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %.300s", r.Status, tt.status, r.Body)
			}
			checkOutcome(t, r.Body, tt.expression, tt.diagnostic)
			if after := countAuthorizations(t, s.Env); after != before {
				t.Errorf("a refused request stored data: %d → %d authorizations", before, after)
			}
		})
	}
	if !strings.Contains(good, `"use": "preauthorization"`) {
		t.Fatal("the fixture changed: the edits above did not apply")
	}
}

// TestSubmitConcurrencyBounded: $submit work beyond the configured slots
// and their short queue is answered 503 with Retry-After, not queued
// without bound (each waiting request would hold its body and parse trees).
func TestSubmitConcurrencyBounded(t *testing.T) {
	s := startSecure(t, testenv.WithConfig(func(c *app.Config) {
		c.Limits.Submits = 1
		c.Limits.QueueWait = time.Millisecond
	}))
	tok := s.Token(s.keyA, clientA, scopesAll)
	// An authenticated $submit that sends its body slowly holds the slot.
	conn := dialRaw(t, s.Env, "")
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/fhir+json\r\nContent-Length: 1000\r\n\r\n{", submitPath, tok)
	var r *testenv.Response
	for range 200 { // until the slow request has taken the slot
		r = s.Post(submitPath, []byte(`{}`), testenv.Bearer(tok)...)
		if r.Status == http.StatusServiceUnavailable {
			break
		}
	}
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 503 with Retry-After: %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	checkOutcome(t, r.Body, "", "PRIORA_SUBMIT_CONCURRENCY")
	conn.Close()
	// The slot is free again once the slow request is gone.
	for range 200 {
		if r = s.Post(submitPath, []byte(`{}`), testenv.Bearer(tok)...); r.Status != http.StatusServiceUnavailable {
			break
		}
	}
	if r.Status != http.StatusBadRequest {
		t.Errorf("after the slow request left: %d, want the 400 of an empty Bundle: %s", r.Status, r.Body)
	}
}

// TestSlowUnauthenticatedBody is #13's finding 9: a request refused before
// authentication is answered and its connection closed at once, without
// waiting for a body sent one byte at a time.
func TestSlowUnauthenticatedBody(t *testing.T) {
	// A pre-authentication timeout as long as the old read timeout: the
	// close must come from the refusal, not from the timeout.
	s := startSecure(t, testenv.WithConfig(func(c *app.Config) { c.Limits.PreAuthTimeout = time.Minute }))
	for _, path := range []string{submitPath, "/fhir/Nothing/here", "/review/tasks"} {
		conn := dialRaw(t, s.Env, "")
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: 100000\r\n\r\n{", path)
		// A safety net for the test, far below the 60 s the connection was
		// held before and above any scheduling delay.
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 401 or 404", path, resp.StatusCode)
		}
		if !resp.Close {
			t.Errorf("%s: the answer does not say Connection: close", path)
		}
		// The trickle goes on; the server has closed its end.
		conn.Write([]byte(`"`))
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) && !isReset(err) {
			t.Errorf("%s: after the answer the connection is still open: %v", path, err)
		}
		conn.Close()
	}
}

// TestConnectionsPerAddressCapped: one address holding many slow
// connections gets no more than the cap; the server goes on answering
// /healthz to others.
func TestConnectionsPerAddressCapped(t *testing.T) {
	const max = 5
	s := startSecure(t, testenv.WithConfig(func(c *app.Config) { c.Limits.ConnsPerIP = max }))
	for range max {
		conn := dialRaw(t, s.Env, "")
		fmt.Fprint(conn, "POST /fhir/Claim/$submit HTTP/1.1\r\nHost: x\r\n") // headers never finished
		defer conn.Close()
	}
	over := dialRaw(t, s.Env, "")
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprint(over, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := over.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Errorf("connection %d from one address: %v, want it closed", max+1, err)
	}
	// Another address is answered.
	other := dialRaw(t, s.Env, "127.0.0.2")
	defer other.Close()
	other.SetReadDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprint(other, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(other), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz from another address: %v %v", resp, err)
	}
}

// TestTokenEndpointNotStarvedByJunk is #13's finding 10: junk sent to
// other endpoints from one address used to empty the bucket the token
// endpoint shared with them.
func TestTokenEndpointNotStarvedByJunk(t *testing.T) {
	s := startSecure(t, testenv.WithConfig(func(c *app.Config) { c.Security.RateLimit, c.Security.RateBurst = 0.1, 3 }))
	limited := false
	for range 10 {
		if r := s.Post(submitPath, []byte(`{}`)); r.Status == http.StatusTooManyRequests {
			limited = true
		}
	}
	if !limited {
		t.Fatal("junk from one address was never rate limited")
	}
	r := s.TokenRequest(s.keyA.Sign(t, nil, s.AssertionClaims(clientA)), scopesAll)
	if r.Status != http.StatusOK {
		t.Fatalf("token after junk from the same address: %d %s", r.Status, r.Body)
	}
	// The token endpoint's own limit is per client once the assertion is
	// verified: client A's requests do not use up client B's.
	for range 4 {
		r = s.TokenRequest(s.keyA.Sign(t, nil, s.AssertionClaims(clientA)), scopesAll)
	}
	if r.Status != http.StatusTooManyRequests {
		t.Errorf("client A over its token limit: %d, want 429", r.Status)
	}
}

// TestTrustedProxies: behind a trusted proxy each forwarded client has
// its own bucket; a peer that is not trusted cannot pick one with
// X-Forwarded-For.
func TestTrustedProxies(t *testing.T) {
	junk := func(s *secEnv, xff string) int {
		return s.Post(submitPath, []byte(`{}`), "X-Forwarded-For", xff).Status
	}
	for _, trusted := range []bool{true, false} {
		t.Run(fmt.Sprint("trusted=", trusted), func(t *testing.T) {
			s := startSecure(t, testenv.WithConfig(func(c *app.Config) {
				c.Security.RateLimit, c.Security.RateBurst = 0.1, 2
				if trusted {
					c.Limits.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
				}
			}))
			for range 3 {
				junk(s, "198.51.100.7, 203.0.113.5")
			}
			got := junk(s, "203.0.113.6")
			want := http.StatusTooManyRequests // one bucket: the peer's
			if trusted {
				want = http.StatusUnauthorized // the other client's own bucket
			}
			if got != want {
				t.Errorf("another forwarded client: %d, want %d", got, want)
			}
		})
	}
}

// dialRaw opens a TCP connection to the server, from local address from
// when set.
func dialRaw(t *testing.T, e *testenv.Env, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// TestJWTTimeOverflow is #13's finding 12 for JWTs: an iat or nbf too
// large for the JWT library's conversion wrapped around to a date long
// past, so a token "issued" or "not valid before" the year 1e300 passed.
// Client assertions and CDS Hooks JWTs with such times are refused.
func TestJWTTimeOverflow(t *testing.T) {
	s := startSecure(t)
	hookURL := s.URL + "/cds-services/order-sign-crd"
	hookBody := testenv.Fixture(t, "crd/ig/CRDServiceRequest.json")
	for _, claim := range []string{"iat", "nbf", "exp"} {
		for _, v := range []float64{1e300, 9.3e18, -1e300} {
			t.Run(fmt.Sprintf("%s=%g", claim, v), func(t *testing.T) {
				c := s.AssertionClaims(clientA)
				c[claim] = v
				r := s.TokenRequest(s.keyA.Sign(t, nil, c), scopesAll)
				if r.Status != http.StatusUnauthorized || !strings.Contains(string(r.Body), claim) {
					t.Errorf("client assertion: %d %s, want 401 naming %s", r.Status, r.Body, claim)
				}
				jwt := s.hookJWT(t, s.inferno, hookURL, func(_, c map[string]any) { c[claim] = v })
				r = s.Post("/cds-services/order-sign-crd", hookBody, "Content-Type", "application/json", "Authorization", "Bearer "+jwt)
				if r.Status != http.StatusUnauthorized || !strings.Contains(string(r.Body), claim) {
					t.Errorf("CDS Hooks JWT: %d %s, want 401 naming %s", r.Status, r.Body, claim)
				}
			})
		}
	}
}
