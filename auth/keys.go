package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
)

// ParseJWKS reads a JWK Set of client public keys, as registered or
// fetched. Private members are ignored; symmetric keys and keys without kid
// are refused; keys of types Priora cannot verify with are skipped.
func ParseJWKS(raw []byte) ([]jwkset.JWK, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("the JWK Set is not valid JSON: %w", err)
	}
	var out []jwkset.JWK
	for i, m := range set.Keys {
		switch {
		case m.KTY == jwkset.KtyOct || m.K != "":
			return nil, fmt.Errorf("key %d: symmetric keys are not accepted", i)
		case m.KID == "":
			return nil, fmt.Errorf("key %d: kid is required", i)
		case m.KTY != jwkset.KtyRSA && m.KTY != jwkset.KtyEC:
			continue
		}
		m.D, m.P, m.Q, m.DP, m.DQ, m.QI, m.OTH = "", "", "", "", "", "", nil
		k, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i, m.KID, err)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("the JWK Set has no RSA or EC key")
	}
	return out, nil
}

// PublicJWKS renders keys as a JWK Set without private members.
func PublicJWKS(keys []jwkset.JWK) ([]byte, error) {
	set := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{}}
	for _, k := range keys {
		m := k.Marshal()
		m.D, m.P, m.Q, m.DP, m.DQ, m.QI, m.OTH = "", "", "", "", "", "", nil
		set.Keys = append(set.Keys, m)
	}
	return json.Marshal(set)
}

// keyTypeFor is the JWK kty (and EC curve) an algorithm verifies with.
func keyTypeFor(alg string) (jwkset.KTY, elliptic.Curve) {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return jwkset.KtyRSA, nil
	case "ES256":
		return jwkset.KtyEC, elliptic.P256()
	case "ES384":
		return jwkset.KtyEC, elliptic.P384()
	case "ES512":
		return jwkset.KtyEC, elliptic.P521()
	}
	return "", nil
}

// selectKey picks the one public key with the given kid whose type suits
// alg (SMART client-confidential-asymmetric "Signature Verification"): none,
// or several different keys, is an error. The same public key listed twice
// (for instance as a public and a private JWK) counts once.
func selectKey(keys []jwkset.JWK, kid, alg string) (any, error) {
	kty, curve := keyTypeFor(alg)
	var found any
	n := 0
	for _, k := range keys {
		m := k.Marshal()
		if m.KID != kid || m.KTY != kty {
			continue
		}
		if m.ALG != "" && string(m.ALG) != alg {
			continue
		}
		if m.USE != "" && m.USE != jwkset.UseSig {
			continue
		}
		pub := publicOf(k.Key())
		switch p := pub.(type) {
		case *rsa.PublicKey:
			if p.Size() < 256 {
				continue // under 2048 bits
			}
		case *ecdsa.PublicKey:
			if p.Curve != curve {
				continue
			}
		default:
			continue
		}
		if found != nil && sameKey(found, pub) {
			continue
		}
		found = pub
		n++
	}
	switch n {
	case 0:
		return nil, fmt.Errorf("no %s key with kid %q", kty, kid)
	case 1:
		return found, nil
	}
	return nil, fmt.Errorf("%d different %s keys share kid %q", n, kty, kid)
}

func publicOf(k any) any {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return &k.PublicKey
	case *ecdsa.PrivateKey:
		return &k.PublicKey
	}
	return k
}

func sameKey(a, b any) bool {
	if e, ok := a.(interface{ Equal(crypto.PublicKey) bool }); ok {
		return e.Equal(b)
	}
	return false
}

// jwksCache fetches client JWK Sets from their URLs (through jwkset, the
// storage behind keyfunc) and keeps them for as long as the response's
// Cache-Control allows, at most maxAge (SMART: a JWK Set SHALL NOT be cached
// longer than its Cache-Control says). A kid that is not in a cached set
// triggers one refetch, at most every minRefetch.
type jwksCache struct {
	client     *http.Client
	now        func() time.Time
	maxAge     time.Duration
	minRefetch time.Duration
	maxBytes   int64

	mu      sync.Mutex
	entries map[string]*jwksEntry
}

type jwksEntry struct {
	mu      sync.Mutex // serialises fetches of one URL
	keys    []jwkset.JWK
	fetched time.Time
	expires time.Time
}

func newJWKSCache(client *http.Client, now func() time.Time) *jwksCache {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return &jwksCache{client: client, now: now, maxAge: 5 * time.Minute, minRefetch: 30 * time.Second,
		maxBytes: 256 << 10, entries: map[string]*jwksEntry{}}
}

// keys returns the JWK Set at u. With kid set, a cached set that lacks kid
// is refetched (rate-limited).
func (c *jwksCache) keys(ctx context.Context, u, kid string) ([]jwkset.JWK, error) {
	c.mu.Lock()
	e := c.entries[u]
	if e == nil {
		if len(c.entries) > 1000 { // registered URLs only; this bounds a misconfiguration
			clear(c.entries)
		}
		e = &jwksEntry{}
		c.entries[u] = e
	}
	c.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	now := c.now()
	fresh := e.keys != nil && now.Before(e.expires)
	if fresh && (kid == "" || hasKID(e.keys, kid) || now.Sub(e.fetched) < c.minRefetch) {
		return e.keys, nil
	}
	keys, ttl, err := c.fetch(ctx, u)
	if err != nil {
		return nil, err
	}
	e.keys, e.fetched, e.expires = keys, now, now.Add(min(ttl, c.maxAge))
	return keys, nil
}

func hasKID(keys []jwkset.JWK, kid string) bool {
	for _, k := range keys {
		if k.Marshal().KID == kid {
			return true
		}
	}
	return false
}

// fetch gets and parses one JWK Set, returning how long it may be cached.
func (c *jwksCache) fetch(ctx context.Context, u string) ([]jwkset.JWK, time.Duration, error) {
	rt := &recordingTransport{base: c.client.Transport, maxBytes: c.maxBytes}
	client := &http.Client{Transport: rt, Timeout: c.client.Timeout, CheckRedirect: noRedirects}
	if client.Timeout == 0 {
		client.Timeout = 5 * time.Second
	}
	st, err := jwkset.NewStorageFromHTTP(u, jwkset.HTTPClientStorageOptions{
		Client: client, Ctx: ctx, HTTPTimeout: client.Timeout,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("fetch JWK Set %s: %w", u, err)
	}
	kf, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: st})
	if err != nil {
		return nil, 0, err
	}
	all, err := kf.Storage().KeyReadAll(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("read JWK Set %s: %w", u, err)
	}
	raw, err := PublicJWKS(all)
	if err != nil {
		return nil, 0, err
	}
	keys, err := ParseJWKS(raw)
	if err != nil {
		return nil, 0, fmt.Errorf("JWK Set %s: %w", u, err)
	}
	return keys, rt.maxAge(c.maxAge), nil
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// recordingTransport caps the response size and remembers Cache-Control.
type recordingTransport struct {
	base     http.RoundTripper
	maxBytes int64
	cc       string
}

func (t *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	r.Header.Set("Accept", "application/json")
	resp, err := base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	t.cc = resp.Header.Get("Cache-Control")
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, t.maxBytes), resp.Body}
	return resp, nil
}

// maxAge is how long the last response may be cached: its max-age, or 0
// for no-store/no-cache, or def without either.
func (t *recordingTransport) maxAge(def time.Duration) time.Duration {
	for _, d := range strings.Split(strings.ToLower(t.cc), ",") {
		d = strings.TrimSpace(d)
		if d == "no-store" || d == "no-cache" {
			return 0
		}
		if v, ok := strings.CutPrefix(d, "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				return time.Duration(n) * time.Second
			}
		}
	}
	return def
}

// checkKeyURL accepts https URLs, and http ones on loopback hosts (for
// development and tests).
func checkKeyURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopbackHost(u.Hostname()) {
			return nil
		}
	}
	return fmt.Errorf("%q must be an https URL", s)
}
