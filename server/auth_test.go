package server_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/store"
)

// secEnv is a Priora with authentication on, three organizations' clients,
// an admin, an EHR calling CDS Hooks, and a web server on loopback that
// publishes JWK Sets and receives subscription notifications.
type secEnv struct {
	*testenv.Env
	keyA, keyB, keyAdmin, inferno, infernoRS *testenv.Key
	web                                      *httptest.Server
	ehrIss                                   string
}

const (
	scopesAll = "system/Claim.c system/ClaimResponse.r system/Subscription.cruds"
	clientA   = "client-a"
	clientB   = "client-b"
	// payerUM is the payer's utilization management system: a payer client
	// with the review API.
	payerUM = "payer-um"
)

func startSecure(t *testing.T, opts ...testenv.Option) *secEnv {
	t.Helper()
	s := &secEnv{
		keyA:      testenv.LoadKey(t, "auth/ES384.private.json", ""),
		keyB:      testenv.LoadKey(t, "auth/RS384.private.json", ""),
		keyAdmin:  testenv.LoadKey(t, "auth/inferno-crd_jwks.json", "b41528b6f37a9500edb8a905a595bdd7"),
		inferno:   testenv.LoadKey(t, "auth/inferno-crd_jwks.json", "4b49a739d1eb115b3225f4cf9beb6d1b"),
		infernoRS: testenv.LoadKey(t, "auth/inferno-crd_jwks.json", "b41528b6f37a9500edb8a905a595bdd7"),
	}
	// Two different EC keys under the SMART ES384 kid.
	var a, b struct{ Keys []json.RawMessage }
	json.Unmarshal(s.keyA.JWKS, &a)
	json.Unmarshal(s.inferno.JWKS, &b)
	other := bytes.Replace(b.Keys[0], []byte(s.inferno.KID), []byte(s.keyA.KID), 1)
	dup, _ := json.Marshal(map[string]any{"keys": []json.RawMessage{a.Keys[0], other}})
	mux := http.NewServeMux()
	mux.HandleFunc("/inferno/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write(testenv.Fixture(t, "auth/inferno-crd_jwks.json"))
	})
	mux.HandleFunc("/a/jwks.json", func(w http.ResponseWriter, r *http.Request) { w.Write(s.keyA.JWKS) })
	mux.HandleFunc("/dup/jwks.json", func(w http.ResponseWriter, r *http.Request) { w.Write(dup) })
	mux.Handle("/", testenv.CheckedEndpoint(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })))
	s.web = httptest.NewServer(mux)
	t.Cleanup(s.web.Close)
	// The loopback web server receives notifications and plays the EHR:
	// the allow list lets Priora reach it (tests may drop it again).
	allowLoopback := testenv.WithConfig(func(c *app.Config) { c.Security.OutboundAllow = []string{"127.0.0.1/32"} })
	s.Env = testenv.Start(t, append([]testenv.Option{testenv.WithAuth(), testenv.WithMaxBody(1 << 20), allowLoopback}, opts...)...)
	s.ehrIss = s.web.URL + "/inferno"

	s.RegisterClient(store.Client{ID: clientA, Org: "org-a", NPI: "1234567893", Scopes: strings.Fields(scopesAll)}, s.keyA)
	s.RegisterClient(store.Client{ID: clientB, Org: "org-b", Scopes: strings.Fields(scopesAll)}, s.keyB)
	s.RegisterClient(store.Client{ID: "client-c", Org: "org-c", Scopes: []string{"system/ClaimResponse.r"}}, s.keyA)
	s.RegisterClient(store.Client{ID: "admin", Org: "payer", Kind: auth.KindPayer, Scopes: []string{auth.ScopeAdmin}}, s.keyAdmin)
	s.RegisterClient(store.Client{ID: payerUM, Org: "payer", Kind: auth.KindPayer, Scopes: []string{auth.ScopeReview, "system/Claim.c"}}, s.keyAdmin)
	s.RegisterClient(store.Client{ID: "client-off", Org: "org-a", Scopes: []string{"system/Claim.c"}, Disabled: true}, s.keyA)
	s.RegisterClient(store.Client{ID: "client-dup", Org: "org-d", JWKSURL: s.web.URL + "/dup/jwks.json", Scopes: []string{"system/Claim.c"}}, nil)
	s.RegisterClient(store.Client{ID: "client-url", Org: "org-e", JWKSURL: s.web.URL + "/a/jwks.json",
		JKUAllow: []string{s.web.URL + "/a/jwks.json"}, Scopes: []string{"system/Claim.c"}}, nil)
	s.RegisterClient(store.Client{ID: s.ehrIss, Org: "org-a", JWKSURL: s.web.URL + "/inferno/jwks.json",
		JKUAllow: []string{s.web.URL + "/inferno/jwks.json"}, Scopes: []string{"system/Claim.c"}}, nil)
	return s
}

// payerToken is a review API token of the payer's UM system.
func (s *secEnv) payerToken(t *testing.T) string {
	t.Helper()
	return s.With(t).Token(s.keyAdmin, payerUM, auth.ScopeReview)
}

// hookJWT is a CDS Hooks JWT as Inferno's CRD client makes it.
func (s *secEnv) hookJWT(t *testing.T, key *testenv.Key, aud string, edit func(h, c map[string]any)) string {
	now := time.Now()
	h := map[string]any{"jku": s.web.URL + "/inferno/jwks.json"}
	c := map[string]any{"iss": s.ehrIss, "aud": aud, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "jti": testenv.NewJTI()}
	if edit != nil {
		edit(h, c)
	}
	return key.Sign(t, h, c)
}

// unsigned is a JWT with alg none.
func unsigned(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

// hmacWith signs claims HS256 with the given secret (an attacker's use of
// a public key as an HMAC secret).
func hmacWith(t *testing.T, kid string, secret []byte, claims map[string]any) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims))
	tok.Header["kid"] = kid
	s, err := tok.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// victim is tenant A's data that tenant B must never see.
type victim struct {
	subscription, authorization, claimResponse string
}

// secrets is what must not appear in an answer to an attacker.
func (v victim) secrets() []string {
	return append(v.patientData(), v.subscription, v.authorization)
}

// patientData is A's patient and request data.
func (v victim) patientData() []string {
	return []string{v.claimResponse, "SMITH", "12345678901", "MEM-1234567", "1234567cov", "A12345"}
}

// assertNoData checks that an answer to an attack holds none of the
// victim's data: an error answer is an OperationOutcome (or an OAuth or
// CDS Hooks error) that may only repeat the id the attacker sent; a 2xx
// answer holds none of A's ids.
func assertNoData(t *testing.T, status int, body []byte, v victim) {
	t.Helper()
	var m map[string]any
	isJSON := json.Unmarshal(body, &m) == nil
	secrets := v.secrets()
	if status >= 400 {
		if !isJSON {
			t.Errorf("the error answer is not JSON: %s", body)
		} else if rt, ok := m["resourceType"]; ok && rt != "OperationOutcome" {
			t.Errorf("the answer is a %v, want an OperationOutcome: %s", rt, body)
		} else if ok {
			secrets = v.patientData() // a 404 may name the id it was asked for
		}
	}
	for _, s := range secrets {
		if s != "" && bytes.Contains(body, []byte(s)) {
			t.Errorf("the answer leaks %q: %s", s, body)
		}
	}
	if _, ok := m["access_token"]; ok {
		t.Errorf("an access token was issued: %s", body)
	}
}

// seed makes tenant A's data: a pended request (with its review task and
// ClaimResponse) and a subscription.
func (s *secEnv) seed(t *testing.T, tokA string) victim {
	t.Helper()
	var v victim
	r := s.Post(submitPath, pendedRequest(t), testenv.Bearer(tokA)...)
	if r.Status != 200 {
		t.Fatalf("submit as A: %d %s", r.Status, r.Body)
	}
	cr, _ := checkPASResponse(t, r.Body)
	v.claimResponse, _ = cr["id"].(string)
	q := s.Get("/review/tasks", testenv.Bearer(s.payerToken(t))...)
	var l taskList
	if err := json.Unmarshal(q.Body, &l); err != nil || len(l.Tasks) != 1 {
		t.Fatalf("A's queue: %d %s", q.Status, q.Body)
	}
	v.authorization = l.Tasks[0].ID
	sub := edit(t, testenv.Fixture(t, "subscriptions/PAS_Subscription_example_v221_good.json"), func(m map[string]any) {
		m["channel"].(map[string]any)["endpoint"] = s.web.URL + "/notify"
		delete(m, "id")
	})
	r = s.Post("/fhir/Subscription", sub, testenv.Bearer(tokA)...)
	if r.Status != http.StatusCreated {
		t.Fatalf("subscription as A: %d %s", r.Status, r.Body)
	}
	v.subscription, _ = r.JSON(t)["id"].(string)
	return v
}

func TestSMARTConfiguration(t *testing.T) {
	s := startSecure(t)
	for _, p := range []string{"/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"} {
		t.Run(p, func(t *testing.T) {
			r := s.With(t).Get(p, "Accept", "application/fhir+xml")
			if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("%d %s %s", r.Status, r.Header.Get("Content-Type"), r.Body)
			}
			var got struct {
				TokenEndpoint string   `json:"token_endpoint"`
				Grants        []string `json:"grant_types_supported"`
				AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
				Algs          []string `json:"token_endpoint_auth_signing_alg_values_supported"`
				Capabilities  []string `json:"capabilities"`
				Scopes        []string `json:"scopes_supported"`
			}
			json.Unmarshal(r.Body, &got)
			want := struct{ TokenEndpoint, Grant, Method string }{s.URL + "/auth/token", "client_credentials", "private_key_jwt"}
			if diff := cmp.Diff(want, struct{ TokenEndpoint, Grant, Method string }{got.TokenEndpoint, strings.Join(got.Grants, ","), strings.Join(got.AuthMethods, ",")}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"RS384", "ES384"}, got.Algs); diff != "" {
				t.Errorf("algs (-want +got):\n%s", diff)
			}
			if !strings.Contains(strings.Join(got.Capabilities, " "), "client-confidential-asymmetric") || len(got.Scopes) == 0 {
				t.Errorf("capabilities %v scopes %v", got.Capabilities, got.Scopes)
			}
		})
	}
	if r := s.Get("/fhir/metadata"); r.Status != 200 {
		t.Errorf("metadata must stay public: %d", r.Status)
	} else if !bytes.Contains(r.Body, []byte(`"SMART-on-FHIR"`)) || !bytes.Contains(r.Body, []byte(s.URL+`/auth/token`)) {
		t.Errorf("CapabilityStatement does not declare SMART with the token endpoint: %.300s", r.Body)
	}
	if r := s.Get("/auth/jwks"); r.Status != 200 || !bytes.Contains(r.Body, []byte(`"ES384"`)) || bytes.Contains(r.Body, []byte(`"d"`)) {
		t.Errorf("jwks: %d %s", r.Status, r.Body)
	}
}

// TestTokenAndAccess is the good path: tokens for ES384 and RS384 clients,
// used for $submit, subscriptions and the review API; scopes mediated.
func TestTokenAndAccess(t *testing.T) {
	s := startSecure(t)
	t.Run("ES384 client", func(t *testing.T) {
		r := s.With(t).TokenRequest(s.keyA.Sign(t, nil, s.AssertionClaims(clientA)), "system/Claim.cruds system/ClaimResponse.read system/Patient.r")
		if r.Status != 200 || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%d %v %s", r.Status, r.Header, r.Body)
		}
		var tr auth.TokenResponse
		json.Unmarshal(r.Body, &tr)
		if diff := cmp.Diff(auth.TokenResponse{TokenType: "bearer", ExpiresIn: 300, Scope: "system/Claim.c system/ClaimResponse.r"},
			auth.TokenResponse{TokenType: tr.TokenType, ExpiresIn: tr.ExpiresIn, Scope: tr.Scope}); diff != "" {
			t.Errorf("token response (-want +got):\n%s", diff)
		}
		if r := s.With(t).Post(submitPath, testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json"), testenv.Bearer(tr.AccessToken)...); r.Status != 200 {
			t.Errorf("submit with the token: %d %s", r.Status, r.Body)
		}
	})
	t.Run("RS384 client", func(t *testing.T) {
		tok := s.With(t).Token(s.keyB, clientB, scopesAll)
		if r := s.With(t).Get("/fhir/Subscription", testenv.Bearer(tok)...); r.Status != 200 {
			t.Errorf("subscription search with the token: %d %s", r.Status, r.Body)
		}
	})
	t.Run("registered JWK Set URL and allow-listed jku", func(t *testing.T) {
		c := s.AssertionClaims("client-url")
		tok := s.keyA.Sign(t, map[string]any{"jku": s.web.URL + "/a/jwks.json"}, c)
		if r := s.With(t).TokenRequest(tok, "system/Claim.c"); r.Status != 200 {
			t.Errorf("%d %s", r.Status, r.Body)
		}
	})
	t.Run("v1 scopes", func(t *testing.T) {
		r := s.With(t).TokenRequest(s.keyB.Sign(t, nil, s.AssertionClaims(clientB)), "system/Subscription.* system/Claim.write")
		var tr auth.TokenResponse
		json.Unmarshal(r.Body, &tr)
		if r.Status != 200 || tr.Scope != "system/Subscription.* system/Claim.c" {
			t.Errorf("%d scope %q: %s", r.Status, tr.Scope, r.Body)
		}
	})
	t.Run("insecure dev is refused off loopback", func(t *testing.T) {
		a := &app.App{Config: app.Config{Security: app.Security{InsecureDev: true}}, Log: slog.New(slog.DiscardHandler)}
		ln, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Skip("cannot listen on 0.0.0.0:", err)
		}
		defer ln.Close()
		if err := a.Serve(t.Context(), ln, time.Second); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("Serve = %v, want a loopback refusal", err)
		}
	})
}

// TestAttacks: each case is an attack over HTTP; each must be rejected with
// the right status, and its answer must hold none of tenant A's data.
func TestAttacks(t *testing.T) {
	s := startSecure(t)
	tokA := s.Token(s.keyA, clientA, scopesAll)
	tokB := s.Token(s.keyB, clientB, scopesAll)
	v := s.seed(t, tokA)
	now := time.Now()
	claimsA := func(edit func(map[string]any)) map[string]any {
		c := s.AssertionClaims(clientA)
		if edit != nil {
			edit(c)
		}
		return c
	}
	token := func(assertion string) func(t *testing.T) *testenv.Response {
		return func(t *testing.T) *testenv.Response { return s.TokenRequest(assertion, scopesAll) }
	}
	get := func(path string, header ...string) func(t *testing.T) *testenv.Response {
		return func(t *testing.T) *testenv.Response { return s.Get(path, header...) }
	}
	post := func(path string, body []byte, header ...string) func(t *testing.T) *testenv.Response {
		return func(t *testing.T) *testenv.Response { return s.Post(path, body, header...) }
	}
	do := func(method, path string, body []byte, header ...string) func(t *testing.T) *testenv.Response {
		return func(t *testing.T) *testenv.Response { return s.Do(method, path, body, header...) }
	}
	replayed := s.keyA.Sign(t, nil, claimsA(nil))
	if r := s.TokenRequest(replayed, scopesAll); r.Status != 200 {
		t.Fatalf("first use of the assertion: %d %s", r.Status, r.Body)
	}
	cdsURL := s.URL + "/cds-services/order-sign-crd"
	hookReplay := s.hookJWT(t, s.inferno, cdsURL, nil)
	hookBody := testenv.Fixture(t, "crd/ig/CRDServiceRequest.json")
	if r := s.Post("/cds-services/order-sign-crd", hookBody, "Content-Type", "application/json", "Authorization", "Bearer "+hookReplay); r.Status == 401 {
		t.Fatalf("first use of the hook JWT: %d %s", r.Status, r.Body)
	}
	forged := func() string { // A's token with its scope claim changed, signature kept
		p := strings.Split(tokA, ".")
		var c map[string]any
		b, _ := base64.RawURLEncoding.DecodeString(p[1])
		json.Unmarshal(b, &c)
		c["scope"], c["tenant"] = "priora/admin", "payer"
		b, _ = json.Marshal(c)
		return p[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + p[2]
	}()
	selfMade := s.keyA.Sign(t, map[string]any{"typ": "at+jwt"}, map[string]any{
		"iss": s.URL, "aud": s.URL, "sub": clientA, "client_id": clientA, "tenant": "org-a", "scope": "priora/admin",
		"exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "jti": testenv.NewJTI(),
	})
	subA := "/fhir/Subscription/" + v.subscription
	taskA := "/review/tasks/" + v.authorization
	decision := []byte(`{"reviewer":{"name":"x"},"items":[{"sequence":1,"action":"approve"},{"sequence":2,"action":"approve"}]}`)
	inquiry := testenv.Fixture(t, "pas/kit/must_support_pa_inquire_request_payload.1.json")
	big := bytes.Repeat([]byte(" "), 2<<20)
	copy(big, `{"resourceType":"Bundle"}`)

	tests := []struct {
		name   string
		send   func(t *testing.T) *testenv.Response
		status int
		// www is a fragment the WWW-Authenticate header must hold.
		www string
	}{
		// The token endpoint.
		{"assertion with alg none", token(unsigned(map[string]any{"alg": "none", "typ": "JWT", "kid": s.keyA.KID}, claimsA(nil))), 401, "invalid_client"},
		{"assertion HS256-signed with the client's public key", token(hmacWith(t, s.keyA.KID, s.keyA.JWKS, claimsA(nil))), 401, ""},
		{"assertion RS384 under the client's EC kid", token(s.keyB.Sign(t, map[string]any{"kid": s.keyA.KID}, claimsA(nil))), 401, ""},
		{"assertion ES256 (not an accepted algorithm)", token(unsigned(map[string]any{"alg": "ES256", "kid": s.keyA.KID}, claimsA(nil)) + "AAAA"), 401, ""},
		{"expired assertion", token(s.keyA.Sign(t, nil, claimsA(func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() }))), 401, ""},
		{"assertion expiring beyond 5 minutes", token(s.keyA.Sign(t, nil, claimsA(func(c map[string]any) { c["exp"] = now.Add(30 * time.Minute).Unix() }))), 401, ""},
		{"assertion with iat in the future", token(s.keyA.Sign(t, nil, claimsA(func(c map[string]any) { c["iat"] = now.Add(10 * time.Minute).Unix() }))), 401, ""},
		{"assertion with nbf in the future", token(s.keyA.Sign(t, nil, claimsA(func(c map[string]any) { c["nbf"] = now.Add(3 * time.Minute).Unix() }))), 401, ""},
		{"assertion for another audience", token(s.keyA.Sign(t, nil, claimsA(func(c map[string]any) { c["aud"] = "https://other.example/auth/token" }))), 401, ""},
		{"assertion replayed (same jti)", token(replayed), 401, ""},
		{"assertion with an unknown kid", token(s.keyA.Sign(t, map[string]any{"kid": "not-a-kid"}, claimsA(nil))), 401, ""},
		{"assertion whose kid names two keys", token(s.keyA.Sign(t, nil, s.AssertionClaims("client-dup"))), 401, ""},
		{"assertion with a jku not on the allow list", token(s.keyA.Sign(t, map[string]any{"jku": s.web.URL + "/dup/jwks.json"}, claimsA(nil))), 401, ""},
		{"assertion whose sub is not its iss", token(s.keyA.Sign(t, nil, claimsA(func(c map[string]any) { c["sub"] = clientB }))), 401, ""},
		{"assertion from a disabled client", token(s.keyA.Sign(t, nil, s.AssertionClaims("client-off"))), 401, ""},
		{"assertion with a tampered signature", token(s.keyA.Sign(t, nil, claimsA(nil))[:20] + "x" + s.keyA.Sign(t, nil, claimsA(nil))[21:]), 401, ""},
		{"scope escalation: a ClaimResponse reader asks for Claim create", func(t *testing.T) *testenv.Response {
			return s.TokenRequest(s.keyA.Sign(t, nil, s.AssertionClaims("client-c")), "system/Claim.c priora/admin")
		}, 400, ""},
		{"password grant", func(t *testing.T) *testenv.Response {
			return s.PostForm("/auth/token", url.Values{"grant_type": {"password"}, "username": {"a"}, "password": {"b"}})
		}, 400, ""},

		// Access tokens.
		{"$submit without a token", post(submitPath, pendedRequest(t)), 401, `realm="priora"`},
		{"malformed Authorization header", post(submitPath, pendedRequest(t), "Authorization", "Bearer"), 401, ""},
		{"Basic credentials", get(subA, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("client-a:secret"))), 401, ""},
		{"garbage bearer token", get(subA, "Authorization", "Bearer not.a.jwt"), 401, "invalid_token"},
		{"a client assertion used as an access token", get(subA, testenv.Bearer(s.keyA.Sign(t, nil, claimsA(nil)))...), 401, "invalid_token"},
		{"an access token with its scope and tenant rewritten", get("/admin/audit", testenv.Bearer(forged)...), 401, "invalid_token"},
		{"an access token signed by the client, not Priora", get("/admin/audit", testenv.Bearer(selfMade)...), 401, "invalid_token"},
		{"scope escalation: reading the audit trail without priora/admin", get("/admin/audit", testenv.Bearer(tokA)...), 403, "insufficient_scope"},
		{"scope escalation: $submit with a ClaimResponse-only token", func(t *testing.T) *testenv.Response {
			tok := s.Token(s.keyA, "client-c", "system/ClaimResponse.r system/Claim.c")
			return s.Post(submitPath, pendedRequest(t), testenv.Bearer(tok)...)
		}, 403, ""},

		// Tenant isolation: B's valid token against A's data.
		{"tenant B reads A's Subscription", get(subA, testenv.Bearer(tokB)...), 404, ""},
		{"tenant B updates A's Subscription", do(http.MethodPut, subA, edit(t, testenv.Fixture(t, "subscriptions/PAS_Subscription_example_v221_good.json"), func(m map[string]any) {
			m["id"] = v.subscription
			m["channel"].(map[string]any)["endpoint"] = s.web.URL + "/evil"
		}), testenv.Bearer(tokB)...), 404, ""},
		{"tenant B deletes A's Subscription", do(http.MethodDelete, subA, nil, testenv.Bearer(tokB)...), 404, ""},
		{"tenant B asks A's Subscription $status", get(subA+"/$status", testenv.Bearer(tokB)...), 404, ""},
		{"tenant B reads A's review task", get(taskA, testenv.Bearer(tokB)...), 403, ""},
		{"tenant B decides A's review task", post(taskA+"/decision", decision, testenv.Bearer(tokB)...), 403, ""},
		{"tenant A decides its own review task", post(taskA+"/decision", decision, testenv.Bearer(tokA)...), 403, ""},
		{"tenant B inquires for A's ClaimResponse without the provider NPI", post(inquirePath, edit(t, inquiry, func(b map[string]any) {
			setIdentifier(b, "Organization", "http://hl7.org/fhir/sid/us-npi", "1111111112")
			setIdentifier(b, "Practitioner", "http://hl7.org/fhir/sid/us-npi", "1111111112")
		}), testenv.Bearer(tokB)...), 200, ""},

		// Hardening.
		{"oversized body", post(submitPath, big, testenv.Bearer(tokA)...), 413, ""},
		{"deeply nested JSON", post(submitPath, deepJSON(300), testenv.Bearer(tokA)...), 400, ""},
		{"MongoDB operator as an inquiry member id", post(inquirePath, bytes.ReplaceAll(inquiry, []byte(`"12345678901"`), []byte(`{"$ne":null}`)), testenv.Bearer(tokB)...), 400, ""},
		{"MongoDB operator strings as the inquiry's member ids", post(inquirePath, operatorMembers(inquiry, `{\"$ne\":null}`), testenv.Bearer(tokB)...), 200, ""},
		{"MongoDB $where strings as the inquiry's member ids", post(inquirePath, operatorMembers(inquiry, `$where`), testenv.Bearer(tokB)...), 200, ""},
		{"MongoDB operator in a search value", get("/fhir/Subscription?status[$ne]=x&url=%7B%22%24ne%22%3Anull%7D", testenv.Bearer(tokB)...), 200, ""},
		{"MongoDB operator in a review filter", get("/review/tasks?status=%7B%22%24ne%22%3A1%7D", testenv.Bearer(s.payerToken(t))...), 400, ""},
		{"MongoDB operator as a Subscription id", get("/fhir/Subscription/%7B%22%24ne%22%3Anull%7D", testenv.Bearer(tokB)...), 404, ""},
		{"path traversal in a Subscription id", get("/fhir/Subscription/..%2F..%2F"+v.subscription, testenv.Bearer(tokB)...), 404, ""},
		{"path traversal in a task id", get("/review/tasks/..%2F..%2F"+v.authorization, testenv.Bearer(s.payerToken(t))...), 404, ""},

		// CDS Hooks.
		{"CDS call without a JWT", post("/cds-services/order-sign-crd", hookBody, "Content-Type", "application/json"), 401, ""},
		{"CDS call with a JWT for another endpoint", post("/cds-services/order-sign-crd", hookBody, "Content-Type", "application/json",
			"Authorization", "Bearer "+s.hookJWT(t, s.inferno, s.URL+"/cds-services/order-select-crd", nil)), 401, ""},
		{"CDS call with a JWT for the discovery endpoint", post("/cds-services/order-sign-crd", hookBody, "Content-Type", "application/json",
			"Authorization", "Bearer "+s.hookJWT(t, s.inferno, s.URL+"/cds-services", nil)), 401, ""},
		{"CDS call with a replayed JWT", post("/cds-services/order-sign-crd", hookBody, "Content-Type", "application/json", "Authorization", "Bearer "+hookReplay), 401, ""},
		{"CDS call with alg none", post("/cds-services/order-sign-crd", hookBody, "Content-Type", "application/json",
			"Authorization", "Bearer "+unsigned(map[string]any{"alg": "none", "kid": s.inferno.KID}, map[string]any{"iss": s.ehrIss, "aud": cdsURL, "exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "jti": "x"})), 401, ""},
		{"CDS call with a jku not on the allow list", post("/cds-services/order-sign-crd", hookBody, "Content-Type", "application/json",
			"Authorization", "Bearer "+s.hookJWT(t, s.inferno, cdsURL, func(h, c map[string]any) { h["jku"] = s.web.URL + "/dup/jwks.json" })), 401, ""},
		{"CDS call from an unregistered issuer", post("/cds-services/order-sign-crd", hookBody, "Content-Type", "application/json",
			"Authorization", "Bearer "+s.hookJWT(t, s.inferno, cdsURL, func(h, c map[string]any) { c["iss"] = "https://evil.example" })), 401, ""},
		{"CDS call with an expired JWT", post("/cds-services/order-sign-crd", hookBody, "Content-Type", "application/json",
			"Authorization", "Bearer "+s.hookJWT(t, s.inferno, cdsURL, func(h, c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })), 401, ""},
		{"CDS call without jti", post("/cds-services/order-sign-crd", hookBody, "Content-Type", "application/json",
			"Authorization", "Bearer "+s.hookJWT(t, s.inferno, cdsURL, func(h, c map[string]any) { delete(c, "jti") })), 401, ""},
		{"CDS feedback without a JWT", post("/cds-services/order-sign-crd/feedback", []byte(`{"feedback":[]}`), "Content-Type", "application/json"), 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.send(t)
			if r.Status != tt.status {
				t.Errorf("status %d, want %d: %s", r.Status, tt.status, r.Body)
			}
			if r.Status == 401 && r.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
			if tt.www != "" && !strings.Contains(r.Header.Get("WWW-Authenticate"), tt.www) {
				t.Errorf("WWW-Authenticate %q, want it to hold %q", r.Header.Get("WWW-Authenticate"), tt.www)
			}
			assertNoData(t, r.Status, r.Body, v)
			if r.Status == 200 && bytes.Contains(r.Body, []byte(`"return"`)) {
				t.Errorf("the answer returns a prior authorization: %s", r.Body)
			}
		})
	}

	t.Run("tenant B's lists hold nothing of A's", func(t *testing.T) {
		for _, p := range []string{"/fhir/Subscription", "/fhir/Subscription/$status"} {
			r := s.With(t).Get(p, testenv.Bearer(tokB)...)
			if r.Status != 200 {
				t.Errorf("%s: %d %s", p, r.Status, r.Body)
			}
			for _, sec := range v.secrets() {
				if bytes.Contains(r.Body, []byte(sec)) {
					t.Errorf("%s leaks %q: %s", p, sec, r.Body)
				}
			}
		}
	})
	t.Run("A's data is unchanged and still A's", func(t *testing.T) {
		if r := s.With(t).Get(subA, testenv.Bearer(tokA)...); r.Status != 200 || bytes.Contains(r.Body, []byte("/evil")) {
			t.Errorf("A's subscription: %d %s", r.Status, r.Body)
		}
		if r := s.With(t).Get(taskA, testenv.Bearer(s.payerToken(t))...); r.Status != 200 || !bytes.Contains(r.Body, []byte(`"pended"`)) {
			t.Errorf("A's task: %d %s", r.Status, r.Body)
		}
	})
	t.Run("tenant B submitting A's very Bundle gets its own request, not A's", func(t *testing.T) {
		r := s.With(t).Post(submitPath, pendedRequest(t), testenv.Bearer(tokB)...)
		if r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		cr, _ := checkPASResponse(t, r.Body)
		if cr["id"] == v.claimResponse || bytes.Contains(r.Body, []byte(v.authorization)) {
			t.Errorf("B was answered with A's response %v", cr["id"])
		}
	})
	t.Run("$inquire from another system with member id and NPI is allowed and audited (PAS spec-52/53)", func(t *testing.T) {
		r := s.With(t).Post(inquirePath, inquiry, testenv.Bearer(tokB)...)
		if r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
}

// TestCDSHooksJWT is the good path of CDS Hooks client authentication: the
// Inferno CRD client's ES384 and RS384 JWTs, keys from the allow-listed jku.
func TestCDSHooksJWT(t *testing.T) {
	s := startSecure(t)
	ehr := newGenerousEHR(t)
	var req map[string]any
	json.Unmarshal(testenv.Fixture(t, "crd/ig/CRDServiceRequest.json"), &req)
	req["fhirServer"] = ehr.URL
	body, _ := json.Marshal(req)
	for _, key := range []*testenv.Key{s.inferno, s.infernoRS} {
		t.Run(key.Alg, func(t *testing.T) {
			jwt := s.hookJWT(t, key, s.URL+"/cds-services/order-sign-crd", nil)
			r := s.With(t).Post("/cds-services/order-sign-crd", body, "Content-Type", "application/json", "Authorization", "Bearer "+jwt)
			if r.Status != 200 {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
		})
	}
	if r := s.Get("/cds-services"); r.Status != 200 {
		t.Errorf("discovery: %d", r.Status)
	}
}

// TestAuditTrail: every access to patient data leaves an AuditEvent-shaped
// record, rejected attempts too; the admin endpoint reads them; they carry
// no patient data.
func TestAuditTrail(t *testing.T) {
	s := startSecure(t)
	tokA := s.Token(s.keyA, clientA, scopesAll)
	v := s.seed(t, tokA)
	s.Post(inquirePath, testenv.Fixture(t, "pas/kit/must_support_pa_inquire_request_payload.1.json"), testenv.Bearer(s.Token(s.keyB, clientB, scopesAll))...)
	s.Post(submitPath, pendedRequest(t)) // no token
	admin := s.Token(s.keyAdmin, "admin", auth.ScopeAdmin)
	r := s.Get("/admin/audit?limit=50", testenv.Bearer(admin)...)
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	var got struct{ Records []store.AuditRecord }
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatal(err)
	}
	type rec struct{ Route, Client, Tenant, Outcome string }
	var recs []rec
	for _, x := range got.Records {
		if x.RequestID == "" || x.Time.IsZero() || x.Action == "" {
			t.Errorf("incomplete record %+v", x)
		}
		recs = append(recs, rec{x.Route, x.Client, x.Tenant, x.Outcome})
	}
	for _, want := range []rec{
		{"/fhir/Claim/$submit", clientA, "org-a", "0"},
		{"/review/tasks", payerUM, "payer", "0"},
		{"/fhir/Subscription", clientA, "org-a", "0"},
		{"/fhir/Claim/$inquire", clientB, "org-b", "0"},
		{"/fhir/Claim/$submit", "", "", "4"},
		{"/auth/token", clientA, "org-a", "0"},
	} {
		if !containsRec(recs, want) {
			t.Errorf("no audit record %+v in %+v", want, recs)
		}
	}
	var submit *store.AuditRecord
	for i, x := range got.Records {
		if x.Route == "/fhir/Claim/$submit" && x.Client == clientA {
			submit = &got.Records[i]
		}
	}
	if submit == nil || !strings.Contains(strings.Join(submit.Entities, " "), "authorization/"+v.authorization) {
		t.Errorf("the submit record does not name the authorization %s: %+v", v.authorization, submit)
	}
	for _, sec := range []string{"SMITH", "12345678901", "MEM-1234567"} {
		if bytes.Contains(r.Body, []byte(sec)) {
			t.Errorf("the audit trail holds patient data %q", sec)
		}
		if strings.Contains(s.Logs.String(), sec) {
			t.Errorf("the log holds patient data %q", sec)
		}
	}
	if r := s.Get("/admin/audit?client=client-b&limit=5", testenv.Bearer(admin)...); r.Status != 200 || bytes.Contains(r.Body, []byte(`"client-a"`)) {
		t.Errorf("client filter: %d %s", r.Status, r.Body)
	}
	if r := s.Get("/admin/audit?since=yesterday", testenv.Bearer(admin)...); r.Status != 400 {
		t.Errorf("bad since: %d", r.Status)
	}
}

// operatorMembers puts op in place of every member id of the kit inquiry.
func operatorMembers(inquiry []byte, op string) []byte {
	for _, id := range []string{"12345678901", "MEM-1234567", "1234567cov"} {
		inquiry = bytes.ReplaceAll(inquiry, []byte(`"`+id+`"`), []byte(`"`+op+`"`))
	}
	return inquiry
}

func containsRec[T comparable](list []T, x T) bool {
	for _, y := range list {
		if y == x {
			return true
		}
	}
	return false
}

func TestRateLimit(t *testing.T) {
	s := startSecure(t, testenv.WithConfig(func(c *app.Config) { c.Security.RateLimit, c.Security.RateBurst = 0.5, 3 }))
	tok := s.Token(s.keyB, clientB, scopesAll) // one token from the address's bucket
	var last *testenv.Response
	for i := range 5 {
		last = s.Get("/fhir/Subscription", testenv.Bearer(tok)...)
		if last.Status == http.StatusTooManyRequests {
			if i < 3 {
				t.Errorf("limited after %d requests, burst is 3", i)
			}
			break
		}
	}
	if last.Status != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 429 with Retry-After", last.Status, last.Header.Get("Retry-After"))
	}
	checkOutcome(t, last.Body, "", "too many requests")
	// Another client has its own bucket.
	if r := s.Get("/fhir/Subscription", testenv.Bearer(s.Token(s.keyA, clientA, scopesAll))...); r.Status != 200 {
		t.Errorf("another client: %d %s", r.Status, r.Body)
	}
}

// TestTLS serves HTTPS from a certificate and key: TLS 1.1 is refused,
// TLS 1.2 answers, and responses carry HSTS.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	e := testenv.Start(t, testenv.WithAuth(), testenv.WithConfig(func(c *app.Config) {
		c.Security.TLSCert, c.Security.TLSKey = certFile, keyFile
	}))
	host := strings.TrimPrefix(e.URL, "http://")
	if _, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Errorf("a TLS 1.1 handshake succeeded")
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}}}
	r, err := c.Get("https://" + host + "/fhir/metadata")
	if err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	r.Body.Close()
	if r.StatusCode != 200 || r.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("status %d, HSTS %q", r.StatusCode, r.Header.Get("Strict-Transport-Security"))
	}
	// Go's TLS server answers plain HTTP with a 400, never with data.
	if r, err := http.Get("http://" + host + "/fhir/metadata"); err == nil {
		r.Body.Close()
		if r.StatusCode == 200 {
			t.Errorf("plain HTTP answered 200")
		}
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1.
func selfSigned(t *testing.T, dir string) (string, string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// TestClientsFileAndInsecureDev: clients listed in PRIORA_CLIENTS_FILE are
// registered at start; InsecureDev (the testenv default) is logged loudly.
func TestClientsFileAndInsecureDev(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.json"), testenv.Fixture(t, "auth/ES384.public.json"), 0o600)
	os.WriteFile(filepath.Join(dir, "clients.yaml"), []byte("clients:\n  - id: seeded\n    org: org-s\n    jwksFile: a.json\n    scopes: [system/Subscription.rs]\n"), 0o600)
	e := testenv.Start(t, testenv.WithAuth(), testenv.WithConfig(func(c *app.Config) { c.Security.ClientsFile = filepath.Join(dir, "clients.yaml") }))
	tok := e.Token(testenv.LoadKey(t, "auth/ES384.private.json", ""), "seeded", "system/Subscription.rs")
	if r := e.Get("/fhir/Subscription", testenv.Bearer(tok)...); r.Status != 200 {
		t.Errorf("seeded client: %d %s", r.Status, r.Body)
	}
	if strings.Contains(e.Logs.String(), "INSECURE_DEV") {
		t.Errorf("insecure dev logged with authentication on")
	}
	dev := testenv.Start(t)
	if !strings.Contains(dev.Logs.String(), `"level":"WARN","msg":"!!! PRIORA_INSECURE_DEV is on: AUTHENTICATION IS OFF`) {
		t.Errorf("insecure dev is not logged loudly:\n%s", dev.Logs.String())
	}
}
