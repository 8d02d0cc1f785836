package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/store"
)

func jwksFile(name string) string { return filepath.Join(testenv.Root(), "testdata", "auth", name) }

// TestClientsCommand manages clients on a data directory no server holds.
func TestClientsCommand(t *testing.T) {
	vars := map[string]string{"PRIORA_DATA_DIR": t.TempDir()}
	secret := filepath.Join(t.TempDir(), "um.secret")
	short := filepath.Join(t.TempDir(), "short.secret")
	os.WriteFile(secret, []byte("a-webhook-secret-of-forty-bytes-0123456\n"), 0o600)
	os.WriteFile(short, []byte("too-short"), 0o600)
	payerAdd := func(id string, extra ...string) []string {
		return append([]string{"add", "--id", id, "--org", "payer", "--kind", "payer", "--jwks-file", jwksFile("ES384.public.json"),
			"--scopes", "priora/review"}, extra...)
	}
	steps := []struct {
		name    string
		args    []string
		wantErr string
		wantOut string
	}{
		{"add", []string{"add", "--id", "ehr-a", "--org", "org-a", "--npi", "1234567893", "--sender-id", "ISA-A",
			"--jwks-file", jwksFile("ES384.private.json"), "--scopes", "system/Claim.c system/ClaimResponse.r"}, "", "client ehr-a added"},
		{"add a CDS Hooks EHR by JWK Set URL", []string{"add", "--id", "https://ehr.example.org/cds", "--org", "org-a",
			"--jwks-url", "https://ehr.example.org/jwks.json", "--jku-allow", "https://ehr.example.org/jwks.json", "--scopes", "system/Claim.c"}, "", "added"},
		{"add again", []string{"add", "--id", "ehr-a", "--org", "org-a", "--jwks-file", jwksFile("ES384.public.json"), "--scopes", "system/Claim.c"}, "exists", ""},
		{"replace", []string{"add", "--replace", "--id", "ehr-a", "--org", "org-a", "--jwks-file", jwksFile("ES384.public.json"), "--scopes", "system/Claim.c"}, "", "added"},
		{"no org", []string{"add", "--id", "x", "--jwks-file", jwksFile("ES384.public.json"), "--scopes", "system/Claim.c"}, "org", ""},
		{"no key", []string{"add", "--id", "x", "--org", "o", "--scopes", "system/Claim.c"}, "exactly one", ""},
		{"plain http JWK Set URL", []string{"add", "--id", "x", "--org", "o", "--jwks-url", "http://ehr.example.org/jwks.json", "--scopes", "system/Claim.c"}, "https", ""},
		{"bad scope", []string{"add", "--id", "x", "--org", "o", "--jwks-file", jwksFile("ES384.public.json"), "--scopes", "system/Claim.zz"}, "scope", ""},
		{"add a payer client", []string{"add", "--id", "um", "--org", "payer", "--kind", "payer",
			"--jwks-file", jwksFile("ES384.public.json"), "--scopes", "priora/review"}, "", "client um added (payer"},
		{"review scope for a provider", []string{"add", "--id", "x", "--org", "o", "--jwks-file", jwksFile("ES384.public.json"),
			"--scopes", "system/Claim.c priora/review"}, "only to payer clients", ""},
		{"unknown kind", []string{"add", "--id", "x", "--org", "o", "--kind", "reviewer", "--jwks-file", jwksFile("ES384.public.json"),
			"--scopes", "system/Claim.c"}, "kind", ""},
		{"a payer's webhook, its secret made and shown once", payerAdd("um-hook", "--webhook", "https://um.payer.example/events"),
			"", "webhook secret (shown once"},
		{"a payer's webhook with a secret file", payerAdd("um-file", "--webhook", "https://um.payer.example/events", "--webhook-secret-file", secret),
			"", "signed with HMAC-SHA256"},
		{"a short webhook secret", payerAdd("x", "--webhook", "https://um.payer.example/events", "--webhook-secret-file", short), "at least 32", ""},
		{"a webhook to a private address", payerAdd("x", "--webhook", "https://10.1.2.3/events"), "public address", ""},
		{"a webhook over plain http", payerAdd("x", "--webhook", "http://um.payer.example/events"), "https", ""},
		{"a secret without a webhook", payerAdd("x", "--webhook-secret-file", secret), "needs --webhook", ""},
		{"a provider's webhook", []string{"add", "--id", "x", "--org", "o", "--jwks-file", jwksFile("ES384.public.json"),
			"--scopes", "system/Claim.c", "--webhook", "https://ehr.example.org/events"}, "payer clients", ""},
		{"list", []string{"list"}, "", "ehr-a"},
		{"list shows kinds", []string{"list"}, "", "payer"},
		{"list shows webhooks", []string{"list"}, "", "https://um.payer.example/events"},
		{"disable", []string{"disable", "ehr-a"}, "", "disabled"},
		{"list shows disabled", []string{"list"}, "", "disabled"},
		{"enable", []string{"enable", "--id", "ehr-a"}, "", "enabled"},
		{"disable unknown", []string{"disable", "nobody"}, "no client", ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), append([]string{"clients"}, st.args...), env(vars), &out, &errb)
			if st.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), st.wantErr) {
					t.Errorf("err = %v, want one mentioning %q", err, st.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v; stderr %s", err, errb.String())
			}
			if !strings.Contains(out.String(), st.wantOut) {
				t.Errorf("output %q lacks %q", out.String(), st.wantOut)
			}
		})
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"clients", "list", "--json"}, env(vars), &out, &out); err != nil {
		t.Fatal(err)
	}
	var cs []store.Client
	if err := json.Unmarshal(out.Bytes(), &cs); err != nil || len(cs) != 5 {
		t.Fatalf("list --json: %v %s", err, out.String())
	}
	if strings.Contains(out.String(), "a-webhook-secret") || !strings.Contains(out.String(), "https://um.payer.example/events") {
		t.Errorf("list --json shows a webhook secret, or no webhook: %s", out.String())
	}
	st, err := store.Open(context.Background(), store.Options{DataDir: vars["PRIORA_DATA_DIR"]})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	if c, err := st.Client(context.Background(), "um-file"); err != nil || c.WebhookSecret != "a-webhook-secret-of-forty-bytes-0123456" {
		t.Errorf("um-file's webhook secret: %+v %v, want the file's (trimmed)", c, err)
	}
	if c, err := st.Client(context.Background(), "um-hook"); err != nil || !strings.HasPrefix(c.WebhookSecret, "whsec_") || len(c.WebhookSecret) < 40 {
		t.Errorf("um-hook's made webhook secret: %+v %v", c, err)
	}
	if strings.Contains(cs[1].JWKS, `"d"`) {
		t.Errorf("a private key member was stored: %s", cs[1].JWKS)
	}
}

// TestClientsWhileServerRuns registers a client with the command while the
// server holds the embedded store, then gets a token from the server with
// it: the command used the running server's store, and authentication is
// on by default.
func TestClientsWhileServerRuns(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	vars := map[string]string{"PRIORA_DATA_DIR": dir, "PRIORA_ADDR": addr}
	go func() { done <- run(ctx, nil, env(vars), out, out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r, err := http.Get(base + "/readyz"); err == nil && r.StatusCode == 200 {
			r.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never became ready:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r, _ := http.Get(base + "/fhir/Subscription"); r == nil || r.StatusCode != 401 {
		t.Fatalf("without a token: %v, want 401 (authentication is on by default)", r)
	}
	var cout, cerr bytes.Buffer
	if err := run(context.Background(), []string{"clients", "add", "--id", "ehr-a", "--org", "org-a",
		"--jwks-file", jwksFile("ES384.public.json"), "--scopes", "system/Subscription.rs"}, env(vars), &cout, &cerr); err != nil {
		t.Fatalf("clients add while the server runs: %v %s", err, cerr.String())
	}
	key := testenv.LoadKey(t, "auth/ES384.private.json", "")
	now := time.Now()
	assertion := key.Sign(t, nil, map[string]any{"iss": "ehr-a", "sub": "ehr-a", "aud": base + "/auth/token",
		"exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "jti": testenv.NewJTI()})
	r, err := http.PostForm(base+"/auth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Subscription.rs"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}})
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(r.Body).Decode(&tr)
	r.Body.Close()
	if r.StatusCode != 200 || tr.AccessToken == "" {
		t.Fatalf("token: %d", r.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/fhir/Subscription", nil)
	req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 200 {
		t.Fatalf("search with the token: %v %v", r, err)
	}
	// Disabling the client from the command stops the same token at once.
	if err := run(context.Background(), []string{"clients", "disable", "ehr-a"}, env(vars), &cout, &cerr); err != nil {
		t.Fatalf("clients disable: %v %s", err, cerr.String())
	}
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 401 {
		t.Fatalf("the token right after clients disable: %v %v, want 401", r, err)
	}
	var aout bytes.Buffer
	if err := run(context.Background(), []string{"audit", "--client", "ehr-a"}, env(vars), &aout, &aout); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(aout.String(), `"route":"/fhir/Subscription"`) {
		t.Errorf("priora audit lacks the search:\n%s", aout.String())
	}
	if _, err := store.Open(context.Background(), store.Options{DataDir: dir}); !errors.Is(err, store.ErrLocked) {
		t.Errorf("a second embedded engine on the data directory: err = %v, want ErrLocked", err)
	}
}

func TestSecurityConfig(t *testing.T) {
	tests := []struct {
		name string
		vars map[string]string
		want string
	}{
		{"insecure dev on loopback", map[string]string{"PRIORA_INSECURE_DEV": "1"}, ""},
		{"insecure dev on every interface", map[string]string{"PRIORA_INSECURE_DEV": "1", "PRIORA_ADDR": "0.0.0.0:8080"}, "PRIORA_INSECURE_DEV is refused"},
		{"insecure dev on a public address", map[string]string{"PRIORA_INSECURE_DEV": "true", "PRIORA_ADDR": "192.0.2.1:8080"}, "loopback"},
		{"insecure dev garbage", map[string]string{"PRIORA_INSECURE_DEV": "maybe"}, "PRIORA_INSECURE_DEV"},
		{"rate limit", map[string]string{"PRIORA_RATE_LIMIT": "5,10"}, ""},
		{"rate limit off", map[string]string{"PRIORA_RATE_LIMIT": "0"}, ""},
		{"bad rate limit", map[string]string{"PRIORA_RATE_LIMIT": "fast"}, "PRIORA_RATE_LIMIT"},
		{"TLS cert without key", map[string]string{"PRIORA_TLS_CERT": "/nonexistent.pem"}, "go together"},
		{"TLS files missing", map[string]string{"PRIORA_TLS_CERT": "/nonexistent.pem", "PRIORA_TLS_KEY": "/nonexistent.key"}, "PRIORA_TLS_CERT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(nil, env(tt.vars), &bytes.Buffer{})
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one mentioning %s", err, tt.want)
			case tt.want == "" && tt.vars["PRIORA_INSECURE_DEV"] == "" && c.security.InsecureDev:
				t.Errorf("insecure dev is on by default")
			}
		})
	}
}
