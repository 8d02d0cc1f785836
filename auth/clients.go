package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/priora/priora/store"
)

// clientID is what a client ID may look like: a plain name or, for EHRs
// calling CDS Hooks (whose JWT iss is the ID), a URL.
var clientID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/\-~%]{0,199}$`)

// orgID is what an organization (tenant) ID may look like.
var orgID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$`)

var npi = regexp.MustCompile(`^[0-9]{10}$`)

// The principal kinds of a client (store.Client.Kind).
const (
	// KindProvider is a provider system (an EHR or its clearinghouse): its
	// organization is its tenant; it submits, inquires, subscribes and calls
	// CDS Hooks. Clients stored without a kind are providers.
	KindProvider = "provider"
	// KindPayer is one of the payer's own systems: it reviews the requests
	// of every provider tenant and never submits.
	KindPayer = "payer"
)

// KindOf is the client's principal kind; a client stored without one is a
// provider.
func KindOf(c *store.Client) string {
	if c.Kind == "" {
		return KindProvider
	}
	return c.Kind
}

// PayerOnly reports whether a scope may be granted only to payer clients:
// deciding prior authorizations and reading the audit trail are the
// payer's, never a provider's (who would otherwise approve its own
// requests).
func PayerOnly(scope string) bool { return scope == ScopeReview || scope == ScopeAdmin }

// CheckClient validates a client before it is registered and normalises
// it: its JWK Set is reduced to public keys and an empty kind becomes
// provider. Exactly one of JWKS and JWKSURL must be set; jku and JWK Set
// URLs must be https (http only on loopback); every scope must parse, and
// the payer-only scopes (priora/review, priora/admin) need kind payer.
func CheckClient(c *store.Client) error {
	var errs []error
	if !clientID.MatchString(c.ID) || strings.Contains(c.ID, "..") {
		errs = append(errs, fmt.Errorf("client id %q: use letters, digits and . _ : / - ~ %% (at most 200)", c.ID))
	}
	if !orgID.MatchString(c.Org) {
		errs = append(errs, fmt.Errorf("org %q: use letters, digits and . _ - (at most 64)", c.Org))
	}
	switch c.Kind {
	case "":
		c.Kind = KindProvider
	case KindProvider, KindPayer:
	default:
		errs = append(errs, fmt.Errorf("kind %q must be %s or %s", c.Kind, KindProvider, KindPayer))
	}
	if c.NPI != "" && !npi.MatchString(c.NPI) {
		errs = append(errs, fmt.Errorf("npi %q must be 10 digits", c.NPI))
	}
	if len(c.SenderID) > 80 {
		errs = append(errs, errors.New("sender id is longer than 80 characters"))
	}
	switch {
	case (c.JWKS == "") == (c.JWKSURL == ""):
		errs = append(errs, errors.New("give exactly one of a JWK Set and a JWK Set URL"))
	case c.JWKS != "":
		keys, err := ParseJWKS([]byte(c.JWKS))
		if err != nil {
			errs = append(errs, err)
			break
		}
		b, err := PublicJWKS(keys)
		if err != nil {
			errs = append(errs, err)
			break
		}
		c.JWKS = string(b)
	default:
		if err := checkKeyURL(c.JWKSURL); err != nil {
			errs = append(errs, fmt.Errorf("JWK Set URL: %w", err))
		}
	}
	for _, u := range c.JKUAllow {
		if err := checkKeyURL(u); err != nil {
			errs = append(errs, fmt.Errorf("jku: %w", err))
		}
	}
	errs = append(errs, checkWebhook(c)...)
	if len(c.Scopes) == 0 {
		errs = append(errs, errors.New("at least one scope is required"))
	}
	for _, s := range c.Scopes {
		if _, ok := ParseScope(s); !ok {
			errs = append(errs, fmt.Errorf("scope %q is not valid", s))
		}
		if PayerOnly(s) && c.Kind == KindProvider {
			errs = append(errs, fmt.Errorf("scope %s is granted only to payer clients (kind %s): a provider never reviews requests", s, KindPayer))
		}
	}
	return errors.Join(errs...)
}

// MinWebhookSecret is the shortest webhook secret accepted, in bytes.
const MinWebhookSecret = 32

// checkWebhook checks a client's UM event webhook: payer clients only, an
// absolute http(s) URL without user information, and a secret of at least
// MinWebhookSecret bytes to sign with. Where the URL may lead is the
// outbound policy's to decide (internal/outbound), when it is registered
// and again when each request is dialled.
func checkWebhook(c *store.Client) []error {
	if c.Webhook == "" {
		if c.WebhookSecret != "" {
			return []error{errors.New("a webhook secret needs a webhook URL")}
		}
		return nil
	}
	var errs []error
	if c.Kind != KindPayer {
		errs = append(errs, fmt.Errorf("a webhook (UM events) is for payer clients (kind %s) only", KindPayer))
	}
	u, err := url.Parse(c.Webhook)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil || (u.Scheme != "https" && u.Scheme != "http") {
		errs = append(errs, fmt.Errorf("webhook %q must be an absolute https URL without user information", c.Webhook))
	}
	if len(c.WebhookSecret) < MinWebhookSecret {
		errs = append(errs, fmt.Errorf("a webhook needs a secret of at least %d bytes to sign events with", MinWebhookSecret))
	}
	return errs
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// ClientSeed is a clients file: clients to register (or replace) at start.
//
//	clients:
//	  - id: ehr-a
//	    org: org-a
//	    kind: provider                   # or payer; provider when absent
//	    npi: "1234567893"
//	    senderId: ISA06-A
//	    jwksFile: keys/ehr-a.jwks.json   # relative to this file
//	    # or jwksUrl: https://ehr-a.example/jwks.json, or jwks: {keys: [...]}
//	    jkuAllow: [https://ehr-a.example/jwks.json]
//	    scopes: [system/Claim.c, system/ClaimResponse.r, system/Subscription.cruds]
//	  - id: um-system
//	    org: payer
//	    kind: payer
//	    jwksFile: keys/um.jwks.json
//	    scopes: [priora/review]
//	    webhook: https://um.payer.example/priora/events
//	    webhookSecretFile: keys/um.webhook-secret   # 32 bytes or more
type ClientSeed struct {
	Clients []SeedClient `yaml:"clients"`
}

// SeedClient is one client in a clients file.
type SeedClient struct {
	store.Client `yaml:",inline"`
	JWKSFile     string    `yaml:"jwksFile,omitempty"`
	JWKS         yaml.Node `yaml:"jwks,omitempty"`
	// WebhookSecretFile holds the secret UM event webhooks are signed with
	// (relative to the clients file).
	WebhookSecretFile string `yaml:"webhookSecretFile,omitempty"`
}

// LoadClients reads and checks a clients file.
func LoadClients(path string) ([]store.Client, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var seed ClientSeed
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&seed); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []store.Client
	var errs []error
	for i, sc := range seed.Clients {
		c := sc.Client
		switch {
		case sc.JWKSFile != "" && !sc.JWKS.IsZero():
			errs = append(errs, fmt.Errorf("%s: client %d: give jwksFile or jwks, not both", path, i))
			continue
		case sc.JWKSFile != "":
			f := sc.JWKSFile
			if !filepath.IsAbs(f) {
				f = filepath.Join(filepath.Dir(path), f)
			}
			jb, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: client %d: %w", path, i, err))
				continue
			}
			c.JWKS = string(jb)
		case !sc.JWKS.IsZero():
			var v any
			if err := sc.JWKS.Decode(&v); err != nil {
				errs = append(errs, fmt.Errorf("%s: client %d: jwks: %w", path, i, err))
				continue
			}
			jb, err := jsonOf(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: client %d: jwks: %w", path, i, err))
				continue
			}
			c.JWKS = string(jb)
		}
		if f := sc.WebhookSecretFile; f != "" {
			if !filepath.IsAbs(f) {
				f = filepath.Join(filepath.Dir(path), f)
			}
			sb, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: client %d: %w", path, i, err))
				continue
			}
			c.WebhookSecret = strings.TrimSpace(string(sb))
		}
		if err := CheckClient(&c); err != nil {
			errs = append(errs, fmt.Errorf("%s: client %q: %w", path, c.ID, err))
			continue
		}
		out = append(out, c)
	}
	return out, errors.Join(errs...)
}

// clientCache keeps recently loaded clients for a short while, so that the
// CDS Hooks JWT check on the order-sign hot path does not read the database
// every time: a disabled EHR is refused there within ttl. Access tokens and
// client assertions always read the registration fresh (and refresh the
// cache), so disabling a client or narrowing its scopes takes effect on
// them at once, whichever process changed the registration.
type clientCache struct {
	st  Store
	now func() time.Time
	ttl time.Duration

	mu sync.Mutex
	m  map[string]cachedClient
}

type cachedClient struct {
	c   *store.Client
	err error
	at  time.Time
}

// errNoClient is an unknown or disabled client.
var errNoClient = errors.New("unknown or disabled client")

// get loads a client; fresh skips the cache. Unknown and disabled clients
// are errNoClient.
func (cc *clientCache) get(ctx context.Context, id string, fresh bool) (*store.Client, error) {
	now := cc.now()
	if !fresh {
		cc.mu.Lock()
		e, ok := cc.m[id]
		cc.mu.Unlock()
		if ok && now.Sub(e.at) < cc.ttl && now.Sub(e.at) >= 0 {
			return e.c, e.err
		}
	}
	c, err := cc.st.Client(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		err = errNoClient
	case err != nil:
		return nil, err // not cached: a store failure is transient
	case c.Disabled:
		c, err = nil, errNoClient
	}
	cc.mu.Lock()
	if len(cc.m) > 10000 {
		clear(cc.m)
	}
	cc.m[id] = cachedClient{c: c, err: err, at: now}
	cc.mu.Unlock()
	return c, err
}
