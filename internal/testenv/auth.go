package testenv

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/conformance/smart"
	"github.com/priora/priora/store"
)

// WithAuth turns authentication on: without it tests run with
// InsecureDev (every caller is the "default" tenant).
func WithAuth() Option { return func(o *options) { o.auth = true } }

// Key is a client's signing key for tests: the key of package smart (the
// signer the conformance suite and the load tool use) and the public JWK
// Set to register for it.
type Key struct {
	smart.Key
	JWKS []byte
}

// LoadKey reads the private key of kid (or the only private key when kid
// is "") from a JWK Set under testdata/, such as "auth/ES384.private.json".
func LoadKey(t testing.TB, name, kid string) *Key {
	t.Helper()
	data := Fixture(t, name)
	k, err := smart.ParseKey(data, kid)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, m := range set.Keys {
		if m.D == "" || m.KID != k.KID {
			continue
		}
		j, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{Private: true}, jwkset.JWKValidateOptions{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		pub, err := auth.PublicJWKS([]jwkset.JWK{j})
		if err != nil {
			t.Fatal(err)
		}
		if m.ALG == "" {
			k.Alg = map[jwkset.KTY]string{jwkset.KtyRSA: "RS384", jwkset.KtyEC: "ES384"}[m.KTY]
		}
		return &Key{Key: *k, JWKS: pub}
	}
	t.Fatalf("%s: no private key %q", name, kid)
	return nil
}

// Sign makes a JWT with the key: header fields over the defaults
// (alg, kid, typ JWT) and the claims as given. A header value of nil
// removes the field.
func (k *Key) Sign(t testing.TB, header map[string]any, claims map[string]any) string {
	t.Helper()
	s, err := k.Key.Sign(header, jwt.MapClaims(claims))
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// NewJTI is a fresh JWT ID.
func NewJTI() string { return smart.NewJTI() }

// RegisterClient registers a client directly in the store, with key's
// public JWK Set unless c names a JWK Set or URL.
func (e *Env) RegisterClient(c store.Client, key *Key) store.Client {
	e.T.Helper()
	if c.JWKS == "" && c.JWKSURL == "" && key != nil {
		c.JWKS = string(key.JWKS)
	}
	if err := auth.CheckClient(&c); err != nil {
		e.T.Fatalf("client %s: %v", c.ID, err)
	}
	c.Created, c.Updated = time.Now(), time.Now()
	if err := e.App.Store.PutClient(context.Background(), &c); err != nil {
		e.T.Fatalf("register client: %v", err)
	}
	return c
}

// AssertionClaims are the claims of a good client assertion for clientID,
// to edit before signing.
func (e *Env) AssertionClaims(clientID string) map[string]any {
	return smart.AssertionClaims(clientID, e.URL+auth.TokenPath, time.Now())
}

// TokenRequest posts a client_credentials request with the assertion.
func (e *Env) TokenRequest(assertion, scope string) *Response {
	e.T.Helper()
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
	return e.PostForm(auth.TokenPath, form)
}

// PostForm posts an application/x-www-form-urlencoded body.
func (e *Env) PostForm(path string, form url.Values) *Response {
	e.T.Helper()
	req, err := http.NewRequest(http.MethodPost, e.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		e.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.send(req)
}

// Token gets an access token for clientID (signed with key) and fails the
// test when none is issued.
func (e *Env) Token(key *Key, clientID, scope string) string {
	e.T.Helper()
	r := e.TokenRequest(key.Sign(e.T, nil, e.AssertionClaims(clientID)), scope)
	if r.Status != http.StatusOK {
		e.T.Fatalf("token for %s: %d %s", clientID, r.Status, r.Body)
	}
	var tr auth.TokenResponse
	if err := json.Unmarshal(r.Body, &tr); err != nil {
		e.T.Fatalf("token response: %v", err)
	}
	return tr.AccessToken
}

// Bearer is the header pair for Do/Get/Post.
func Bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

// send sends a request and reads the whole answer.
func (e *Env) send(req *http.Request) *Response {
	e.T.Helper()
	resp, err := e.Client.Do(req)
	if err != nil {
		e.T.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.T.Fatalf("read body: %v", err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}
