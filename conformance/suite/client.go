package suite

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

// response is an HTTP answer, read whole.
type response struct {
	Status  int
	Header  http.Header
	Body    []byte
	Elapsed time.Duration
}

// contentType is the media type of the answer, without parameters.
func (r *response) contentType() string {
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	return strings.TrimSpace(ct)
}

// client speaks HTTP to the server under test, authenticating as
// configured: a static bearer token, or a SMART Backend Services token
// fetched with a signed client assertion; CDS Hooks calls carry a JWT
// signed with the client key.
type client struct {
	http     *http.Client
	fhirBase string
	cdsBase  string
	token    string // static bearer token
	clientID string
	key      *SigningKey
	scope    string

	mu      sync.Mutex
	smart   string // fetched access token
	expires time.Time
}

func (c *client) do(ctx context.Context, method, rawURL string, body []byte, header http.Header) (*response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read body: %w", method, rawURL, err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b, Elapsed: time.Since(start)}, nil
}

// fhir sends a FHIR JSON request to FHIRBase + path with the bearer token.
func (c *client) fhir(ctx context.Context, method, path string, body []byte) (*response, error) {
	h := http.Header{"Accept": {"application/fhir+json"}}
	if body != nil {
		h.Set("Content-Type", "application/fhir+json")
	}
	tok, err := c.bearer(ctx)
	if err != nil {
		return nil, err
	}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	return c.do(ctx, method, c.fhirBase+path, body, h)
}

// hook sends a CDS Hooks request (GET discovery when body is nil) to the
// absolute URL, with a fresh JWT whose aud is that URL (CDS Hooks
// "Trusting CDS Clients").
func (c *client) hook(ctx context.Context, rawURL string, body []byte) (*response, error) {
	h := http.Header{"Accept": {"application/json"}}
	method := http.MethodGet
	if body != nil {
		method = http.MethodPost
		h.Set("Content-Type", "application/json")
	}
	if c.key != nil {
		jwt, err := c.key.cdsJWT(c.clientID, rawURL)
		if err != nil {
			return nil, err
		}
		h.Set("Authorization", "Bearer "+jwt)
	} else if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	return c.do(ctx, method, rawURL, body, h)
}

// bearer returns the access token for FHIR calls: the static one, or a
// SMART Backend Services token fetched (and refreshed) with the key.
func (c *client) bearer(ctx context.Context) (string, error) {
	if c.token != "" || c.key == nil || c.clientID == "" {
		return c.token, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.smart != "" && time.Now().Before(c.expires) {
		return c.smart, nil
	}
	tok, ttl, err := c.fetchToken(ctx)
	if err != nil {
		return "", err
	}
	c.smart, c.expires = tok, time.Now().Add(ttl-10*time.Second)
	return tok, nil
}

// fetchToken is SMART Backend Services: discover the token endpoint in
// .well-known/smart-configuration, then client_credentials with a
// private_key_jwt client assertion.
func (c *client) fetchToken(ctx context.Context) (string, time.Duration, error) {
	r, err := c.do(ctx, http.MethodGet, c.fhirBase+"/.well-known/smart-configuration", nil, http.Header{"Accept": {"application/json"}})
	if err != nil {
		return "", 0, fmt.Errorf("SMART configuration: %w", err)
	}
	var conf struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &conf) != nil || conf.TokenEndpoint == "" {
		return "", 0, fmt.Errorf("SMART configuration at %s/.well-known/smart-configuration: status %d, no token_endpoint", c.fhirBase, r.Status)
	}
	assertion, err := c.key.sign(jwt.MapClaims{
		"iss": c.clientID, "sub": c.clientID, "aud": conf.TokenEndpoint,
		"exp": time.Now().Add(4 * time.Minute).Unix(), "iat": time.Now().Unix(), "jti": newID(),
	})
	if err != nil {
		return "", 0, err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {c.scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
	r, err = c.do(ctx, http.MethodPost, conf.TokenEndpoint, []byte(form.Encode()),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Accept": {"application/json"}})
	if err != nil {
		return "", 0, fmt.Errorf("token request: %w", err)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &tr) != nil || tr.AccessToken == "" {
		return "", 0, fmt.Errorf("token request to %s: status %d: %s", conf.TokenEndpoint, r.Status, snippet(r.Body))
	}
	ttl := time.Duration(tr.ExpiresIn) * time.Second
	if ttl < time.Minute {
		ttl = time.Minute
	}
	return tr.AccessToken, ttl, nil
}

// SigningKey is the client's private key: it signs SMART client
// assertions and CDS Hooks JWTs.
type SigningKey struct {
	KID    string
	Alg    string // RS384, ES384, ES256, ...
	Signer crypto.Signer
}

// ParseSigningKey reads a private key from a JWK, a JWK Set (the first
// private key, or the one with kid when kid is set) or PEM (PKCS#8,
// PKCS#1 or SEC 1). A PEM key has no kid of its own: pass one.
func ParseSigningKey(data []byte, kid string) (*SigningKey, error) {
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
		return &SigningKey{KID: m.KID, Alg: alg, Signer: signer}, nil
	}
	return nil, errors.New("client key: no private key found (a JWK with \"d\")")
}

func parsePEMKey(data []byte, kid string) (*SigningKey, error) {
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
	return &SigningKey{KID: kid, Alg: defaultAlg(signer), Signer: signer}, nil
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

func (k *SigningKey) sign(claims jwt.MapClaims) (string, error) {
	m := jwt.GetSigningMethod(k.Alg)
	if m == nil {
		return "", fmt.Errorf("client key: unsupported alg %q", k.Alg)
	}
	tok := jwt.NewWithClaims(m, claims)
	tok.Header["typ"] = "JWT"
	if k.KID != "" {
		tok.Header["kid"] = k.KID
	}
	s, err := tok.SignedString(k.Signer)
	if err != nil {
		return "", fmt.Errorf("sign JWT: %w", err)
	}
	return s, nil
}

// cdsJWT is the JWT of one CDS Hooks call (CH-24/25): iss the client id,
// aud the exact endpoint URL, a fresh jti, five minutes to live.
func (k *SigningKey) cdsJWT(iss, aud string) (string, error) {
	now := time.Now()
	return k.sign(jwt.MapClaims{"iss": iss, "aud": aud, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "jti": newID()})
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newUUID is a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// snippet shortens a body for a message.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
