package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/priora/priora/internal/testenv"
)

// TestSIGHUPReloadsClients: SIGHUP re-reads the clients file with the
// rules: a narrowed client loses the scope at once (its token is
// re-checked), a new client can get a token, and an invalid file changes
// nothing.
func TestSIGHUPReloadsClients(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildPriora(t)
	deadline := time.Now().Add(90 * time.Second)
	addr := freeAddr(t)
	base := "http://" + addr
	dir := t.TempDir()
	jwks, err := filepath.Abs(filepath.Join(testenv.Root(), "testdata", "auth", "ES384.public.json"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "clients.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(strings.ReplaceAll(body, "JWKS", jwks)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`clients:
  - {id: ehr-a, org: org-a, jwksFile: JWKS, scopes: [system/Subscription.rs, system/Claim.c]}
`)
	srv := startChild(t, bin, addr, filepath.Join(dir, "data"), deadline, "PRIORA_INSECURE_DEV=", "PRIORA_CLIENTS_FILE="+file)
	defer srv.stop(t)

	key := testenv.LoadKey(t, "auth/ES384.private.json", "")
	token := func(client, scope string) (string, int) {
		t.Helper()
		now := time.Now()
		assertion := key.Sign(t, nil, map[string]any{"iss": client, "sub": client, "aud": base + "/auth/token",
			"exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "jti": testenv.NewJTI()})
		r, err := http.PostForm(base+"/auth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		var tr struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.NewDecoder(r.Body).Decode(&tr)
		return tr.AccessToken, r.StatusCode
	}
	search := func(tok string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+"/fhir/Subscription", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	hangup := func() {
		t.Helper()
		if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	// until polls what the server answers until it says want (the signal
	// is handled asynchronously).
	until := func(what string, want int, got func() int) {
		t.Helper()
		for {
			if got() == want {
				return
			}
			select {
			case <-srv.done:
				t.Fatalf("priora exited after SIGHUP:\n%s", srv.log.String())
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: never answered %d", what, want)
			}
		}
	}

	tok, st := token("ehr-a", "system/Subscription.rs")
	if st != http.StatusOK || search(tok) != http.StatusOK {
		t.Fatalf("before the reload: token %d, search with it %d", st, search(tok))
	}
	if _, st := token("ehr-b", "system/Claim.c"); st == http.StatusOK {
		t.Fatal("ehr-b got a token before it was registered")
	}

	// An invalid file: nothing changes.
	write(`clients:
  - {id: ehr-a, org: org-a, jwksFile: JWKS, scopes: [system/Claim.c]}
  - {id: ehr-b, org: org-b, jwksFile: JWKS, scopes: [system/Claim.zz]}
`)
	hangup()
	until("the refused reload logged", 1, func() int { return strings.Count(srv.log.String(), "clients: reload refused") })
	if got := search(tok); got != http.StatusOK {
		t.Errorf("after an invalid clients file, ehr-a's search answers %d, want 200 (nothing changed)", got)
	}

	// A valid file: ehr-a narrowed, ehr-b added.
	write(`clients:
  - {id: ehr-a, org: org-a, jwksFile: JWKS, scopes: [system/Claim.c]}
  - {id: ehr-b, org: org-b, jwksFile: JWKS, scopes: [system/Claim.c]}
`)
	hangup()
	until("ehr-a narrowed", http.StatusForbidden, func() int { return search(tok) })
	if _, st := token("ehr-b", "system/Claim.c"); st != http.StatusOK {
		t.Errorf("ehr-b after the reload: token %d, want 200", st)
	}
}
