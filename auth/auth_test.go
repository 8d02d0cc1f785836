package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

// memStore is an in-memory Store.
type memStore struct {
	mu      sync.Mutex
	clients map[string]*store.Client
	jtis    map[string]time.Time
	keys    map[string]store.SigningKey
	current string
}

func newMemStore(clients ...store.Client) *memStore {
	m := &memStore{clients: map[string]*store.Client{}, jtis: map[string]time.Time{}, keys: map[string]store.SigningKey{}}
	for i := range clients {
		m.clients[clients[i].ID] = &clients[i]
	}
	return m
}

func (m *memStore) Client(_ context.Context, id string) (*store.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.clients[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	cp := *c
	return &cp, nil
}

func (m *memStore) UseJTI(_ context.Context, key string, exp time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.jtis[key]; ok {
		return store.ErrDuplicate
	}
	m.jtis[key] = exp
	return nil
}

func (m *memStore) SigningKeys(context.Context) ([]store.SigningKey, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.SigningKey
	for _, k := range m.keys {
		out = append(out, k)
	}
	return out, m.current, nil
}

func (m *memStore) AddSigningKey(_ context.Context, k *store.SigningKey, prev string, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.current != prev {
		return store.ErrConflict
	}
	m.keys[k.KID] = *k
	if old, ok := m.keys[prev]; ok {
		old.Retired = &now
		m.keys[prev] = old
	}
	m.current = k.KID
	return nil
}

func (m *memStore) DeleteSigningKey(_ context.Context, kid string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, kid)
	return nil
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "auth", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// staticTransport serves fixed bodies by URL.
type staticTransport map[string][]byte

func (s staticTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	b, ok := s[r.URL.String()]
	if !ok {
		return &http.Response{StatusCode: 404, Body: io.NopCloser(bytes.NewReader(nil)), Header: http.Header{}, Request: r}, nil
	}
	return &http.Response{StatusCode: 200, Body: io.NopCloser(bytes.NewReader(b)), Header: http.Header{}, Request: r}, nil
}

// TestHookVerifierSpecVector verifies the CDS Hooks 2.0.1 example JWT
// (ES384, key from its jku) with a clock fixed before it expired, and
// checks that the same token is refused when anything is off.
func TestHookVerifierSpecVector(t *testing.T) {
	var vec struct {
		Header     map[string]any  `json:"jwt_header"`
		Payload    map[string]any  `json:"jwt_payload"`
		JWKSPublic json.RawMessage `json:"jwks_public"`
		Compact    string          `json:"compact_jwt"`
	}
	if err := json.Unmarshal(fixture(t, "cdshooks-2.0.1-jwt-example-testvector.json"), &vec); err != nil {
		t.Fatal(err)
	}
	iss := vec.Payload["iss"].(string)
	jku := vec.Header["jku"].(string)
	aud := vec.Payload["aud"].(string)
	exp := time.Unix(int64(vec.Payload["exp"].(float64)), 0)

	tests := []struct {
		name     string
		now      time.Time
		client   store.Client
		aud      string
		header   string
		wantErr  string
		twice    bool
		disabled bool
	}{
		{name: "good via jku", now: exp.Add(-time.Minute), client: store.Client{ID: iss, Org: "ehr", JWKSURL: jku, JKUAllow: []string{jku}}, aud: aud},
		{name: "good via registered JWKS, jku allow-listed", now: exp.Add(-time.Minute), client: store.Client{ID: iss, Org: "ehr", JWKS: string(vec.JWKSPublic), JKUAllow: []string{jku}}, aud: aud},
		{name: "expired", now: exp.Add(time.Hour), client: store.Client{ID: iss, Org: "ehr", JWKSURL: jku, JKUAllow: []string{jku}}, aud: aud, wantErr: "expired"},
		{name: "jku not allow-listed", now: exp.Add(-time.Minute), client: store.Client{ID: iss, Org: "ehr", JWKS: string(vec.JWKSPublic)}, aud: aud, wantErr: "jku is not on this client's allow list"},
		{name: "other endpoint", now: exp.Add(-time.Minute), client: store.Client{ID: iss, Org: "ehr", JWKSURL: jku, JKUAllow: []string{jku}}, aud: "https://cds.example.org/cds-services/other-service", wantErr: "wrong aud"},
		{name: "unknown issuer", now: exp.Add(-time.Minute), client: store.Client{ID: "https://someone-else.example/", Org: "ehr", JWKSURL: jku, JKUAllow: []string{jku}}, aud: aud, wantErr: "not a registered, enabled client"},
		{name: "disabled issuer", now: exp.Add(-time.Minute), client: store.Client{ID: iss, Org: "ehr", JWKSURL: jku, JKUAllow: []string{jku}, Disabled: true}, aud: aud, wantErr: "not a registered, enabled client"},
		{name: "replay", now: exp.Add(-time.Minute), client: store.Client{ID: iss, Org: "ehr", JWKSURL: jku, JKUAllow: []string{jku}}, aud: aud, twice: true, wantErr: "jti was used before"},
		{name: "too far ahead", now: exp.Add(-2 * time.Hour), client: store.Client{ID: iss, Org: "ehr", JWKSURL: jku, JKUAllow: []string{jku}}, aud: aud, wantErr: "expires more than"},
		{name: "no bearer", now: exp.Add(-time.Minute), client: store.Client{ID: iss, Org: "ehr", JWKSURL: jku, JKUAllow: []string{jku}}, aud: aud, header: "Basic " + vec.Compact, wantErr: "Bearer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, err := New(context.Background(), Config{
				Store:      newMemStore(tt.client),
				BaseURL:    "https://cds.example.org",
				HTTPClient: &http.Client{Transport: staticTransport{jku: vec.JWKSPublic}},
				Now:        func() time.Time { return tt.now },
			})
			if err != nil {
				t.Fatal(err)
			}
			h := tt.header
			if h == "" {
				h = "Bearer " + vec.Compact
			}
			c, err := svc.VerifyHook(context.Background(), h, tt.aud)
			if tt.twice && err == nil {
				c, err = svc.VerifyHook(context.Background(), h, tt.aud)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("VerifyHook: %v", err)
				}
				if c.ID != iss {
					t.Errorf("client = %q, want %q", c.ID, iss)
				}
				return
			}
			var ae *fhir.Error
			if !errors.As(err, &ae) || ae.Kind != fhir.Unauthorized || ae.Code != "invalid_token" {
				t.Fatalf("err = %v, want an Unauthorized invalid_token error containing %q", err, tt.wantErr)
			}
			if !bytes.Contains([]byte(ae.Message), []byte(tt.wantErr)) {
				t.Errorf("reason = %q, want it to contain %q", ae.Message, tt.wantErr)
			}
		})
	}
}

func TestParseScope(t *testing.T) {
	tests := []struct {
		in   string
		want Scope
		ok   bool
	}{
		{"system/Claim.c", Scope{Raw: "system/Claim.c", Context: "system", Resource: "Claim", Perms: Create}, true},
		{"system/ClaimResponse.rs", Scope{Raw: "system/ClaimResponse.rs", Context: "system", Resource: "ClaimResponse", Perms: Read | Search}, true},
		{"system/Subscription.cruds", Scope{Raw: "system/Subscription.cruds", Context: "system", Resource: "Subscription", Perms: AllPerms}, true},
		{"system/Claim.read", Scope{Raw: "system/Claim.read", Context: "system", Resource: "Claim", Perms: Read | Search}, true},
		{"system/Claim.write", Scope{Raw: "system/Claim.write", Context: "system", Resource: "Claim", Perms: Create | Update | Delete}, true},
		{"system/*.*", Scope{Raw: "system/*.*", Context: "system", Resource: "*", Perms: AllPerms}, true},
		{"priora/review", Scope{Raw: "priora/review"}, true},
		{"system/Claim.dus", Scope{}, false},
		{"system/Claim.", Scope{}, false},
		{"system/Claim.x", Scope{}, false},
		{"system/claim.r", Scope{}, false},
		{"system/Claim.rs?patient=1", Scope{}, false},
		{"system/Claim", Scope{}, false},
		{"system", Scope{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := ParseScope(tt.in)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseScope(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestGrant(t *testing.T) {
	allowed := ParseScopes("system/Claim.c system/ClaimResponse.rs system/Subscription.cruds priora/review")
	tests := []struct {
		requested, want string
	}{
		{"system/Claim.c", "system/Claim.c"},
		{"system/Claim.cruds", "system/Claim.c"},
		{"system/Claim.write", "system/Claim.c"},
		{"system/Claim.*", "system/Claim.c"},
		{"system/ClaimResponse.read", "system/ClaimResponse.read"},
		{"system/ClaimResponse.r system/Subscription.rs", "system/ClaimResponse.r system/Subscription.rs"},
		{"system/*.r", "system/ClaimResponse.r system/Subscription.r"},
		{"system/Patient.r", ""},
		{"system/Claim.r", ""},
		{"priora/admin", ""},
		{"priora/review priora/admin", "priora/review"},
		{"patient/Claim.c", ""},
		{"system/Claim.c system/Claim.c", "system/Claim.c"},
	}
	for _, tt := range tests {
		t.Run(tt.requested, func(t *testing.T) {
			got := Grant(ParseScopes(tt.requested), allowed).String()
			if got != tt.want {
				t.Errorf("Grant(%q) = %q, want %q", tt.requested, got, tt.want)
			}
		})
	}
}

func TestSelectKey(t *testing.T) {
	es := fixture(t, "ES384.public.json")
	rs := fixture(t, "RS384.public.json")
	esPriv := fixture(t, "ES384.private.json") // public and private JWK under one kid
	var esSet, rsSet struct{ Keys []map[string]any }
	json.Unmarshal(es, &esSet)
	json.Unmarshal(rs, &rsSet)
	esKID := esSet.Keys[0]["kid"].(string)
	rsKID := rsSet.Keys[0]["kid"].(string)
	// Two different keys under one kid: the RS key relabelled with the EC kid... and an EC key relabelled.
	other := map[string]any{}
	inferno := fixture(t, "inferno-crd_jwks.json")
	var inf struct{ Keys []map[string]any }
	json.Unmarshal(inferno, &inf)
	for _, k := range inf.Keys {
		if k["kty"] == "EC" && k["d"] == nil {
			for kk, v := range k {
				other[kk] = v
			}
		}
	}
	other["kid"] = esKID
	dup, _ := json.Marshal(map[string]any{"keys": []any{esSet.Keys[0], other}})

	tests := []struct {
		name, jwks, kid, alg string
		wantErr              bool
	}{
		{"EC key for ES384", string(es), esKID, "ES384", false},
		{"RSA key for RS384", string(rs), rsKID, "RS384", false},
		{"public and private JWK of one key count once", string(esPriv), esKID, "ES384", false},
		{"RSA kid with ES384", string(rs), rsKID, "ES384", true},
		{"EC kid with RS384", string(es), esKID, "RS384", true},
		{"unknown kid", string(es), "nope", "ES384", true},
		{"two keys one kid", string(dup), esKID, "ES384", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParseJWKS([]byte(tt.jwks))
			if err != nil {
				t.Fatal(err)
			}
			_, err = selectKey(keys, tt.kid, tt.alg)
			if (err != nil) != tt.wantErr {
				t.Errorf("selectKey err = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestCheckClient(t *testing.T) {
	jwks := string(fixture(t, "ES384.public.json"))
	tests := []struct {
		name    string
		c       store.Client
		wantErr bool
	}{
		{"good", store.Client{ID: "ehr-a", Org: "org-a", JWKS: jwks, Scopes: []string{"system/Claim.c"}}, false},
		{"url id", store.Client{ID: "https://inferno.example/custom/crd_server", Org: "org-a", JWKSURL: "https://inferno.example/jwks.json", Scopes: []string{"system/Claim.c"}}, false},
		{"no org", store.Client{ID: "ehr-a", JWKS: jwks, Scopes: []string{"system/Claim.c"}}, true},
		{"operator org", store.Client{ID: "ehr-a", Org: "$ne", JWKS: jwks, Scopes: []string{"system/Claim.c"}}, true},
		{"both key sources", store.Client{ID: "ehr-a", Org: "o", JWKS: jwks, JWKSURL: "https://x.example/j", Scopes: []string{"system/Claim.c"}}, true},
		{"http jwks url", store.Client{ID: "ehr-a", Org: "o", JWKSURL: "http://x.example/j", Scopes: []string{"system/Claim.c"}}, true},
		{"bad scope", store.Client{ID: "ehr-a", Org: "o", JWKS: jwks, Scopes: []string{"system/Claim.zz"}}, true},
		{"symmetric key", store.Client{ID: "ehr-a", Org: "o", JWKS: `{"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}`, Scopes: []string{"system/Claim.c"}}, true},
		{"bad npi", store.Client{ID: "ehr-a", Org: "o", NPI: "12", JWKS: jwks, Scopes: []string{"system/Claim.c"}}, true},
		{"payer reviews", store.Client{ID: "um", Org: "payer", Kind: KindPayer, JWKS: jwks, Scopes: []string{ScopeReview, ScopeAdmin}}, false},
		{"provider reviews", store.Client{ID: "ehr-a", Org: "o", JWKS: jwks, Scopes: []string{"system/Claim.c", ScopeReview}}, true},
		{"provider reads the audit", store.Client{ID: "ehr-a", Org: "o", Kind: KindProvider, JWKS: jwks, Scopes: []string{ScopeAdmin}}, true},
		{"unknown kind", store.Client{ID: "ehr-a", Org: "o", Kind: "reviewer", JWKS: jwks, Scopes: []string{"system/Claim.c"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckClient(&tt.c)
			if (err != nil) != tt.wantErr {
				t.Errorf("CheckClient err = %v, want error %v", err, tt.wantErr)
			}
		})
	}
	t.Run("private members are dropped", func(t *testing.T) {
		c := store.Client{ID: "a", Org: "o", JWKS: string(fixture(t, "ES384.private.json")), Scopes: []string{"system/Claim.c"}}
		if err := CheckClient(&c); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains([]byte(c.JWKS), []byte(`"d"`)) {
			t.Errorf("registered JWKS keeps a private member: %s", c.JWKS)
		}
	})
}

// TestTokenLifecycle issues a token, verifies it, rotates Priora's signing
// key and checks that old and new tokens verify and both keys are published.
func TestTokenLifecycle(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	client := store.Client{ID: "ehr-a", Org: "org-a", JWKS: string(fixture(t, "ES384.public.json")), Scopes: []string{"system/Claim.c"}}
	st := newMemStore(client)
	svc, err := New(ctx, Config{Store: st, BaseURL: "https://pa.example", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	issue := func() string {
		t.Helper()
		tok, err := svc.keys.sign(ctx, accessClaims{
			RegisteredClaims: jwtClaims("https://pa.example", "ehr-a", now),
			ClientID:         "ehr-a", Tenant: "org-a", Scope: "system/Claim.c",
		})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	old := issue()
	if a, err := svc.VerifyAccess(ctx, old); err != nil || a.Tenant != "org-a" || !a.Scopes.Allows("Claim", Create) {
		t.Fatalf("VerifyAccess = %+v, %v", a, err)
	}
	if _, err := svc.RotateKey(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := issue()
	for name, tok := range map[string]string{"old": old, "new": fresh} {
		if _, err := svc.VerifyAccess(ctx, tok); err != nil {
			t.Errorf("%s token after rotation: %v", name, err)
		}
	}
	jwks, _ := svc.JWKS()
	var pub struct{ Keys []map[string]any }
	json.Unmarshal(jwks, &pub)
	if len(pub.Keys) != 2 || bytes.Contains(jwks, []byte(`"d"`)) {
		t.Errorf("JWKS after rotation: %s", jwks)
	}
	// Narrowing the registration narrows the token at once; disabling the
	// client stops it at once (no cache expiry between).
	st.mu.Lock()
	st.clients["ehr-a"].Scopes = []string{"system/ClaimResponse.r"}
	st.mu.Unlock()
	if a, err := svc.VerifyAccess(ctx, fresh); err != nil || a.Scopes.Allows("Claim", Create) {
		t.Errorf("after narrowing: VerifyAccess = %+v, %v; want a token without system/Claim.c", a, err)
	}
	st.mu.Lock()
	st.clients["ehr-a"].Disabled = true
	st.mu.Unlock()
	if _, err := svc.VerifyAccess(ctx, fresh); authnOf(err) == nil {
		t.Errorf("a disabled client's token: err = %v, want an Unauthorized credential error", err)
	}
}

// TestPayerOnlyScopes: a registry edited by hand cannot give a provider
// the review or audit scopes, neither in new tokens nor in old ones.
func TestPayerOnlyScopes(t *testing.T) {
	legacy := &store.Client{ID: "ehr-a", Org: "org-a", Scopes: []string{"system/Claim.c", ScopeReview, ScopeAdmin}}
	got := Allowed(legacy, ParseScopes("system/Claim.c priora/review priora/admin")).String()
	if got != "system/Claim.c" {
		t.Errorf("provider granted %q, want system/Claim.c", got)
	}
	payer := &store.Client{ID: "um", Org: "payer", Kind: KindPayer, Scopes: []string{ScopeReview}}
	if got := Allowed(payer, ParseScopes("priora/review priora/admin")).String(); got != ScopeReview {
		t.Errorf("payer granted %q, want priora/review", got)
	}
}

func TestLoadClients(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.jwks.json"), fixture(t, "ES384.public.json"), 0o600)
	os.WriteFile(filepath.Join(dir, "um.secret"), []byte("0123456789abcdef0123456789abcdef\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "short.secret"), []byte("0123456789abcdef"), 0o600)
	payer := "clients:\n  - id: um\n    org: payer\n    kind: payer\n    jwksFile: a.jwks.json\n    scopes: [priora/review]\n"
	good := `clients:
  - id: ehr-a
    org: org-a
    npi: "1234567893"
    jwksFile: a.jwks.json
    scopes: [system/Claim.c, system/ClaimResponse.r]
  - id: https://ehr.example.org/cds
    org: org-a
    jwksUrl: https://ehr.example.org/jwks.json
    jkuAllow: [https://ehr.example.org/jwks.json]
    scopes: [system/Claim.c]
`
	tests := []struct {
		name, yaml string
		want       []string // client ids
		wantErr    string
	}{
		{"good", good, []string{"ehr-a", "https://ehr.example.org/cds"}, ""},
		{"unknown field", "clients:\n  - id: a\n    orgg: x\n", nil, "orgg"},
		{"no key", "clients:\n  - id: a\n    org: o\n    scopes: [system/Claim.c]\n", nil, "exactly one"},
		{"payer", "clients:\n  - id: um\n    org: payer\n    kind: payer\n    jwksFile: a.jwks.json\n    scopes: [priora/review]\n", []string{"um"}, ""},
		{"payer webhook", payer + "    webhook: https://um.payer.example/events\n    webhookSecretFile: um.secret\n", []string{"um"}, ""},
		{"webhook without a secret", payer + "    webhook: https://um.payer.example/events\n", nil, "secret of at least 32"},
		{"webhook with a short secret", payer + "    webhook: https://um.payer.example/events\n    webhookSecretFile: short.secret\n", nil, "at least 32"},
		{"webhook secret inline", payer + "    webhook: https://um.payer.example/events\n    webhookSecret: x\n", nil, "webhookSecret"},
		{"webhook not a URL", payer + "    webhook: um.payer.example/events\n    webhookSecretFile: um.secret\n", nil, "absolute https URL"},
		{"provider webhook", "clients:\n  - id: a\n    org: o\n    jwksFile: a.jwks.json\n    scopes: [system/Claim.c]\n" +
			"    webhook: https://ehr.example.org/events\n    webhookSecretFile: um.secret\n", nil, "payer clients"},
		{"provider with review", "clients:\n  - id: a\n    org: o\n    jwksFile: a.jwks.json\n    scopes: [priora/review]\n", nil, "only to payer clients"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(dir, tt.name+".yaml")
			os.WriteFile(f, []byte(tt.yaml), 0o600)
			cs, err := LoadClients(f)
			if tt.wantErr != "" {
				if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.wantErr)) {
					t.Errorf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, c := range cs {
				ids = append(ids, c.ID)
			}
			if tt.name == "payer webhook" && (cs[0].Webhook != "https://um.payer.example/events" || cs[0].WebhookSecret != "0123456789abcdef0123456789abcdef") {
				t.Errorf("webhook %q secret %q, want the URL and the file's secret (trimmed)", cs[0].Webhook, cs[0].WebhookSecret)
			}
			if diff := cmp.Diff(tt.want, ids); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func jwtClaims(iss, sub string, now time.Time) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{Issuer: iss, Subject: sub, Audience: jwt.ClaimStrings{iss},
		ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)), IssuedAt: jwt.NewNumericDate(now), ID: randomID()}
}
