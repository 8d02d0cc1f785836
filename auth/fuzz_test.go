package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

// FuzzClientJWT feeds arbitrary client assertions to the token endpoint's
// verifier and arbitrary CDS Hooks JWTs to the hook verifier: whatever the
// bytes, the answer is a token or an error a client may see (401/400),
// never a panic or an internal error. Seeds: a good ES384 assertion, the
// CDS Hooks 2.0.1 example JWT, and assertions whose exp, iat or nbf
// overflow (#13 finding 12).
func FuzzClientJWT(f *testing.F) {
	var vec struct {
		Header     map[string]any  `json:"jwt_header"`
		Payload    map[string]any  `json:"jwt_payload"`
		JWKSPublic json.RawMessage `json:"jwks_public"`
		Compact    string          `json:"compact_jwt"`
	}
	if err := json.Unmarshal(readFixture(f, "cdshooks-2.0.1-jwt-example-testvector.json"), &vec); err != nil {
		f.Fatal(err)
	}
	iss, jku, aud := vec.Payload["iss"].(string), vec.Header["jku"].(string), vec.Payload["aud"].(string)
	now := time.Unix(int64(vec.Payload["exp"].(float64)), 0).Add(-time.Minute)
	signer, kid, pub := privateKey(f, "ES384.private.json")
	const base = "https://pa.example.org"
	svc, err := New(context.Background(), Config{
		Store: newMemStore(
			store.Client{ID: iss, Org: "ehr", JWKSURL: jku, JKUAllow: []string{jku}},
			store.Client{ID: "fuzz-client", Org: "org-a", JWKS: string(pub), Scopes: []string{"system/Claim.c"}},
		),
		BaseURL:    base,
		HTTPClient: &http.Client{Transport: staticTransport{jku: vec.JWKSPublic}},
		Now:        func() time.Time { return now },
	})
	if err != nil {
		f.Fatal(err)
	}
	sign := func(edit func(map[string]any)) string {
		c := jwt.MapClaims{"iss": "fuzz-client", "sub": "fuzz-client", "aud": base + TokenPath,
			"exp": now.Add(4 * time.Minute).Unix(), "iat": now.Unix(), "jti": "j-" + time.Now().Format(time.RFC3339Nano)}
		edit(c)
		t := jwt.NewWithClaims(jwt.SigningMethodES384, c)
		t.Header["kid"] = kid
		s, err := t.SignedString(signer)
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	f.Add(sign(func(map[string]any) {}))
	f.Add(sign(func(c map[string]any) { c["iat"] = 1e300 }))
	f.Add(sign(func(c map[string]any) { c["nbf"] = 9.3e18 }))
	f.Add(sign(func(c map[string]any) { c["exp"] = -1e300 }))
	f.Add(sign(func(c map[string]any) { c["exp"] = "soon" }))
	f.Add(vec.Compact)
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Claim.c"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {raw}}
		if _, err := svc.IssueToken(context.Background(), form); err != nil {
			if k := fhir.KindOf(err); k != fhir.Unauthorized && k != fhir.Invalid {
				t.Fatalf("client assertion %q: %v (kind %v)", raw, err, k)
			}
		}
		if _, err := svc.VerifyHook(context.Background(), "Bearer "+raw, aud); err != nil && fhir.KindOf(err) != fhir.Unauthorized {
			t.Fatalf("hook JWT %q: %v", raw, err)
		}
	})
}

func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "auth", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// privateKey reads the only private key of a JWK Set under testdata/auth,
// its kid and the public JWK Set.
func privateKey(tb testing.TB, name string) (any, string, []byte) {
	tb.Helper()
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(readFixture(tb, name), &set); err != nil {
		tb.Fatal(err)
	}
	for _, m := range set.Keys {
		if m.D == "" {
			continue
		}
		j, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{Private: true}, jwkset.JWKValidateOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		pub, err := PublicJWKS([]jwkset.JWK{j})
		if err != nil {
			tb.Fatal(err)
		}
		return j.Key(), m.KID, pub
	}
	tb.Fatal("no private key in " + name)
	return nil, "", nil
}
