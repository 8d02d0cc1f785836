package desk_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/store"
)

// browserFrom is a browser whose connections come from a loopback address
// of its own (127.0.0.x), a different client address for the server.
func browserFrom(t *testing.T, e *testenv.Env, ip string) *browser {
	b := newBrowser(t, e)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	b.c.Transport = &http.Transport{DialContext: d.DialContext}
	return b
}

// TestSignInCannotLockOutReviewer is #13's finding 11: an attacker who
// keeps failing sign-ins for a reviewer's username locks out the
// attacker's own address, never the reviewer; one address guessing across
// usernames is stopped too; and failures, refusals and CSRF refusals are
// in the audit trail with their request ids.
func TestSignInCannotLockOutReviewer(t *testing.T) {
	e := start(t)
	attacker := browserFrom(t, e, "127.0.0.7")
	for i := range 12 { // past the per-username and per-account counts
		attacker.signIn(reviewerUser, "guess"+itoa(i))
	}
	if p := attacker.signIn(reviewerUser, reviewerPassword); p.Status != http.StatusTooManyRequests {
		t.Fatalf("the attacker's address after 12 failures: %d, want 429", p.Status)
	}
	reviewer := browserFrom(t, e, "127.0.0.8")
	if p := reviewer.signIn(reviewerUser, reviewerPassword); p.Status != http.StatusSeeOther {
		t.Fatalf("the reviewer from another address is locked out: %d", p.Status)
	}

	// One address trying many usernames is stopped across usernames.
	sprayer := browserFrom(t, e, "127.0.0.9")
	for i := range 30 {
		if p := sprayer.signIn("user"+itoa(i), "Winter2026!"); p.Status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d, want 401", i+1, p.Status)
		}
	}
	if p := sprayer.signIn("user-new", "Winter2026!"); p.Status != http.StatusTooManyRequests {
		t.Errorf("a fresh username from an address with 30 failures: %d, want 429", p.Status)
	}

	// A sign-in form without its CSRF token is refused and recorded.
	if p := reviewer.post("/desk/login", url.Values{"csrf": {"forged"}, "username": {reviewerUser}, "password": {"x"}}); p.Status != http.StatusForbidden {
		t.Errorf("sign-in without the CSRF token: %d, want 403", p.Status)
	}

	recs, err := e.App.Store.Audit(context.Background(), store.AuditFilter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	var failed, locked, csrf int
	for _, r := range recs {
		if r.Type != "desk" || r.Route != "/desk/login" {
			continue
		}
		if r.RequestID == "" || r.Outcome != "4" {
			t.Errorf("sign-in audit record without a request id or with outcome %q: %+v", r.Outcome, r)
		}
		switch {
		case r.Status == http.StatusUnauthorized && strings.Contains(r.Detail, "sign-in failed"):
			failed++
		case r.Status == http.StatusTooManyRequests && strings.Contains(r.Detail, "refused"):
			locked++
		case r.Status == http.StatusForbidden && strings.Contains(r.Detail, "CSRF"):
			csrf++
		}
	}
	// 5 failures before the attacker's address was locked, 30 sprayed; 7
	// guesses and the right password refused to the attacker, 1 to the
	// sprayer.
	if failed != 5+30 || locked != 7+1+1 || csrf != 1 {
		t.Errorf("audit trail: %d failed sign-ins (want 35), %d refusals (want 9), %d CSRF refusals (want 1)", failed, locked, csrf)
	}
}
