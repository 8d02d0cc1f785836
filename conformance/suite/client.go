package suite

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/priora/priora/conformance/smart"
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
	key      *smart.Key
	tokens   *smart.TokenSource // SMART Backend Services, when key and clientID are set
}

func newClient(hc *http.Client, fhirBase, cdsBase string, cfg Config) *client {
	c := &client{http: hc, fhirBase: fhirBase, cdsBase: cdsBase, token: cfg.Token, clientID: cfg.ClientID, key: cfg.Key}
	if cfg.Key != nil && cfg.ClientID != "" {
		c.tokens = &smart.TokenSource{HTTP: hc, FHIRBase: fhirBase, ClientID: cfg.ClientID, Key: cfg.Key,
			Scope: cmp.Or(cfg.Scope, "system/*.cruds")}
	}
	return c
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
		jwt, err := c.key.HookJWT(c.clientID, rawURL)
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
	if c.token != "" || c.tokens == nil {
		return c.token, nil
	}
	return c.tokens.Token(ctx)
}

// SigningKey is the client's private key (see smart.Key).
type SigningKey = smart.Key

// ParseSigningKey reads the client's private key (see smart.ParseKey).
func ParseSigningKey(data []byte, kid string) (*SigningKey, error) { return smart.ParseKey(data, kid) }

func newID() string { return smart.NewJTI() }

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
