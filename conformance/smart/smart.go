// Package smart is the client side of SMART Backend Services and of CDS
// Hooks authentication: a client's private key, the client assertion
// (private_key_jwt) it signs for an access token, the JWT it signs for each
// CDS Hooks call, and a token source that fetches and refreshes access
// tokens. The conformance suite, the load tool (bench) and the test
// environment share it; it imports nothing of Priora's server side.
package smart

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Key is a client's private key: it signs SMART client assertions and
// CDS Hooks JWTs.
type Key struct {
	KID    string
	Alg    string // RS384, ES384, ES256, ...
	Signer crypto.Signer
}

// ParseKey reads a private key from a JWK, a JWK Set (the first private
// key, or the one with kid when kid is set) or PEM (PKCS#8, PKCS#1 or
// SEC 1). A PEM key has no kid of its own: pass one.
func ParseKey(data []byte, kid string) (*Key, error) {
	trimmed := bytes.TrimSpace(data)
	if bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		return parsePEMKey(trimmed, kid)
	}
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(trimmed, &set); err != nil || len(set.Keys) == 0 {
		var one jwkset.JWKMarshal
		if err := json.Unmarshal(trimmed, &one); err != nil {
			return nil, fmt.Errorf("client key: neither PEM nor a JWK (Set): %w", err)
		}
		set.Keys = []jwkset.JWKMarshal{one}
	}
	for _, m := range set.Keys {
		if m.D == "" || (kid != "" && m.KID != kid) {
			continue
		}
		j, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{Private: true}, jwkset.JWKValidateOptions{})
		if err != nil {
			return nil, fmt.Errorf("client key %q: %w", m.KID, err)
		}
		signer, ok := j.Key().(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("client key %q: %T cannot sign", m.KID, j.Key())
		}
		alg := string(m.ALG)
		if alg == "" {
			alg = defaultAlg(signer)
		}
		return &Key{KID: m.KID, Alg: alg, Signer: signer}, nil
	}
	if kid != "" {
		return nil, fmt.Errorf("client key: no private key with kid %q", kid)
	}
	return nil, errors.New("client key: no private key found (a JWK with \"d\")")
}

func parsePEMKey(data []byte, kid string) (*Key, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("client key: bad PEM")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("client key: %T cannot sign", key)
	}
	return &Key{KID: kid, Alg: defaultAlg(signer), Signer: signer}, nil
}

func defaultAlg(s crypto.Signer) string {
	if k, ok := s.(*ecdsa.PrivateKey); ok {
		switch k.Curve {
		case elliptic.P256():
			return "ES256"
		case elliptic.P521():
			return "ES512"
		}
		return "ES384"
	}
	if _, ok := s.(*rsa.PrivateKey); ok {
		return "RS384"
	}
	return "EdDSA"
}

// Sign makes a JWT: the header is alg, kid (when the key has one) and typ
// JWT, overridden by header (a nil value removes the field; an "alg"
// value also picks the signing method); the claims are as given.
func (k *Key) Sign(header map[string]any, claims jwt.MapClaims) (string, error) {
	alg := k.Alg
	if a, ok := header["alg"].(string); ok {
		alg = a
	}
	m := jwt.GetSigningMethod(alg)
	if m == nil {
		return "", fmt.Errorf("client key: unsupported alg %q", alg)
	}
	tok := jwt.NewWithClaims(m, claims)
	tok.Header["typ"] = "JWT"
	if k.KID != "" {
		tok.Header["kid"] = k.KID
	}
	for h, v := range header {
		if v == nil {
			delete(tok.Header, h)
		} else {
			tok.Header[h] = v
		}
	}
	s, err := tok.SignedString(k.Signer)
	if err != nil {
		return "", fmt.Errorf("sign JWT: %w", err)
	}
	return s, nil
}

// AssertionClaims are the claims of a client assertion for the token
// endpoint tokenURL (SMART Backend Services "Authenticating to the Token
// endpoint"): iss and sub the client id, aud the token URL, four minutes
// to live, a fresh jti.
func AssertionClaims(clientID, tokenURL string, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": clientID, "sub": clientID, "aud": tokenURL,
		"exp": now.Add(4 * time.Minute).Unix(), "iat": now.Unix(), "jti": NewJTI(),
	}
}

// HookJWT is the JWT of one CDS Hooks call ("Trusting CDS Clients"): iss
// the client id, aud the exact service URL, a fresh jti, five minutes to
// live.
func (k *Key) HookJWT(clientID, serviceURL string) (string, error) {
	now := time.Now()
	return k.Sign(nil, jwt.MapClaims{"iss": clientID, "aud": serviceURL,
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "jti": NewJTI()})
}

// NewJTI is a fresh random JWT ID.
func NewJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// TokenSource fetches SMART Backend Services access tokens for a client:
// it discovers the token endpoint in FHIRBase/.well-known/smart-configuration,
// posts a client_credentials request with a signed client assertion, and
// keeps the token until shortly before it expires. It is safe for
// concurrent use.
type TokenSource struct {
	HTTP     *http.Client
	FHIRBase string // the FHIR base URL, e.g. https://payer.example.org/fhir
	ClientID string
	Key      *Key
	Scope    string

	mu       sync.Mutex
	tokenURL string
	token    string
	expires  time.Time
}

// Token returns a valid access token, fetching one when needed.
func (s *TokenSource) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && time.Now().Before(s.expires) {
		return s.token, nil
	}
	if s.tokenURL == "" {
		u, err := s.discover(ctx)
		if err != nil {
			return "", err
		}
		s.tokenURL = u
	}
	now := time.Now()
	assertion, err := s.Key.Sign(nil, AssertionClaims(s.ClientID, s.tokenURL, now))
	if err != nil {
		return "", err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {s.Scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	status, b, err := s.do(req)
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if status != http.StatusOK || json.Unmarshal(b, &tr) != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("token request to %s: status %d: %s", s.tokenURL, status, snippet(b))
	}
	ttl := max(time.Duration(tr.ExpiresIn)*time.Second, time.Minute)
	s.token, s.expires = tr.AccessToken, now.Add(ttl-30*time.Second)
	return s.token, nil
}

func (s *TokenSource) discover(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.FHIRBase+"/.well-known/smart-configuration", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	status, b, err := s.do(req)
	if err != nil {
		return "", fmt.Errorf("SMART configuration: %w", err)
	}
	var conf struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if status != http.StatusOK || json.Unmarshal(b, &conf) != nil || conf.TokenEndpoint == "" {
		return "", fmt.Errorf("SMART configuration at %s/.well-known/smart-configuration: status %d, no token_endpoint", s.FHIRBase, status)
	}
	return conf.TokenEndpoint, nil
}

func (s *TokenSource) do(req *http.Request) (int, []byte, error) {
	c := s.HTTP
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, b, err
}

// snippet shortens a body for a message.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
