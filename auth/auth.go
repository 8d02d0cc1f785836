// Package auth decides who may call Priora: the SMART Backend Services
// token endpoint (client_credentials with a private_key_jwt client
// assertion, RFC 7523), the client registry, the SMART scope model, the
// access tokens Priora signs and verifies, and the verification of the JWTs
// EHRs send with CDS Hooks calls. It knows nothing of HTTP routing; the
// server package maps its errors to responses.
//
// Every client belongs to one organization (its tenant). An access token
// names the client, its tenant and the granted scopes; the server scopes
// every read and write to that tenant.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

// Paths of the authorization server, under the public base URL.
const (
	TokenPath = "/auth/token"
	JWKSPath  = "/auth/jwks"
)

// Store is what auth keeps in the database; *store.Store implements it.
type Store interface {
	Client(ctx context.Context, id string) (*store.Client, error)
	UseJTI(ctx context.Context, key string, expires time.Time) error
	SigningKeys(ctx context.Context) ([]store.SigningKey, string, error)
	AddSigningKey(ctx context.Context, k *store.SigningKey, previousKID string, now time.Time) error
	DeleteSigningKey(ctx context.Context, kid string) error
}

// Config configures the Service.
type Config struct {
	Store Store
	// BaseURL is Priora's public origin; the token endpoint (the audience
	// of client assertions) is BaseURL + TokenPath.
	BaseURL string
	// Algs are the JWT algorithms accepted from clients (assertions and CDS
	// Hooks JWTs); default RS384 and ES384. Only RS*, PS* and ES* may be
	// listed: none and HMAC are never accepted.
	Algs []string
	// TokenLifetime is the access token lifetime: default and at most 300 s.
	TokenLifetime time.Duration
	// HookMaxLifetime bounds how far in the future a CDS Hooks JWT may
	// expire (default 1 h); client assertions may expire at most 5 minutes
	// ahead (SMART).
	HookMaxLifetime time.Duration
	// Leeway tolerates clock skew in exp, nbf and iat (default 30 s).
	Leeway time.Duration
	// HTTPClient fetches client JWK Sets.
	HTTPClient *http.Client
	Now        func() time.Time
	Log        *slog.Logger
}

// Service issues and verifies tokens.
type Service struct {
	cfg     Config
	log     *slog.Logger
	clients *clientCache
	jwks    *jwksCache
	keys    *signer
}

// New builds the Service and makes sure Priora has a signing key.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("auth: a store is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Algs) == 0 {
		cfg.Algs = []string{"RS384", "ES384"}
	}
	for _, a := range cfg.Algs {
		if kty, _ := keyTypeFor(a); kty == "" {
			return nil, fmt.Errorf("auth: algorithm %q is not accepted (asymmetric RS, PS and ES algorithms only)", a)
		}
	}
	if cfg.TokenLifetime <= 0 || cfg.TokenLifetime > 300*time.Second {
		cfg.TokenLifetime = 300 * time.Second
	}
	if cfg.HookMaxLifetime <= 0 {
		cfg.HookMaxLifetime = time.Hour
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = 30 * time.Second
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	s := &Service{
		cfg:     cfg,
		log:     cfg.Log,
		clients: &clientCache{st: cfg.Store, now: cfg.Now, ttl: 30 * time.Second, m: map[string]cachedClient{}},
		jwks:    newJWKSCache(cfg.HTTPClient, cfg.Now),
		keys:    &signer{st: cfg.Store, now: cfg.Now},
	}
	if err := s.keys.load(ctx, true); err != nil {
		return nil, err
	}
	return s, nil
}

// TokenURL is the token endpoint, the audience of client assertions.
func (s *Service) TokenURL() string { return s.cfg.BaseURL + TokenPath }

// Algs are the accepted client signing algorithms.
func (s *Service) Algs() []string { return slices.Clone(s.cfg.Algs) }

// oauthErr is an OAuth 2.0 error (RFC 6749 §5.2): code is the error code
// (invalid_request, invalid_client, invalid_scope, unsupported_grant_type)
// and travels as the *fhir.Error's Code; desc is safe to show. An
// unauthenticated client (invalid_client) is Unauthorized, the rest Invalid.
func oauthErr(code, desc string) *fhir.Error {
	k := fhir.Invalid
	if code == "invalid_client" {
		k = fhir.Unauthorized
	}
	return fhir.CodedErrorf(k, code, "%s", desc)
}

// authnf is a credential (client assertion, access token, CDS Hooks JWT)
// that does not authenticate its sender: an Unauthorized *fhir.Error with
// Code invalid_token whose message says why and is safe to show the caller.
// Any other error from a verification is a failure of Priora's own (such as
// the store), not of the credential.
func authnf(format string, args ...any) error {
	return fhir.CodedErrorf(fhir.Unauthorized, "invalid_token", format, args...)
}

// authnOf is the credential failure err holds, nil when err is not one.
func authnOf(err error) *fhir.Error {
	var e *fhir.Error
	if errors.As(err, &e) && e.Kind == fhir.Unauthorized {
		return e
	}
	return nil
}

// clientJWT says what a client-signed JWT must satisfy.
type clientJWT struct {
	aud         string
	maxLifetime time.Duration
	requireSub  bool // SMART: sub = iss
	requireIat  bool
	kind        string // for messages: "client assertion", "CDS Hooks JWT"
}

// clientClaims are the claims of a client assertion or CDS Hooks JWT.
type clientClaims struct {
	jwt.RegisteredClaims
	Tenant string `json:"tenant,omitempty"`
}

// verifyClientJWT checks a JWT signed by a registered client: the
// algorithm is on the allow list; iss names an enabled client; the key is
// the single key with the header's kid and a matching type, from the jku
// (only when that client allow-lists it) or from the client's registered
// JWK Set or JWK Set URL; the signature; aud; exp (required, and not too
// far ahead), nbf and iat (not in the future); jti (required and never seen
// before for this issuer). Replays and every other failure are errors whose
// message is safe to show.
func (s *Service) verifyClientJWT(ctx context.Context, raw string, want clientJWT) (*store.Client, *clientClaims, error) {
	if raw == "" || len(raw) > 16<<10 {
		return nil, nil, authnf("the %s is missing or too long", want.kind)
	}
	if err := checkNumericDates(raw, want.kind); err != nil {
		return nil, nil, err
	}
	var client *store.Client
	var storeErr error
	keyfunc := func(t *jwt.Token) (any, error) {
		if typ, ok := t.Header["typ"]; ok {
			if ts, _ := typ.(string); !strings.EqualFold(ts, "JWT") {
				return nil, authnf("the %s header typ must be JWT", want.kind)
			}
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, authnf("the %s header has no kid", want.kind)
		}
		claims := t.Claims.(*clientClaims)
		if claims.Issuer == "" {
			return nil, authnf("the %s has no iss", want.kind)
		}
		c, err := s.clients.get(ctx, claims.Issuer, want.requireSub)
		if err != nil {
			if !errors.Is(err, errNoClient) {
				storeErr = err
			}
			return nil, authnf("the %s's iss is not a registered, enabled client", want.kind)
		}
		client = c
		keys, err := s.clientKeys(ctx, c, t.Header, kid)
		if err != nil {
			return nil, err
		}
		alg, _ := t.Header["alg"].(string)
		key, err := selectKey(keys, kid, alg)
		if err != nil {
			return nil, authnf("%s key: %v", want.kind, err)
		}
		return key, nil
	}
	p := jwt.NewParser(
		jwt.WithValidMethods(s.cfg.Algs),
		jwt.WithAudience(want.aud),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(s.cfg.Leeway),
		jwt.WithTimeFunc(s.cfg.Now),
	)
	var claims clientClaims
	if _, err := p.ParseWithClaims(raw, &claims, keyfunc); err != nil {
		if storeErr != nil {
			return nil, nil, storeErr
		}
		if ae := authnOf(err); ae != nil {
			return nil, nil, ae
		}
		return nil, nil, authnf("the %s is not valid: %s", want.kind, jwtReason(err))
	}
	now := s.cfg.Now()
	if claims.ExpiresAt.Sub(now) > want.maxLifetime+s.cfg.Leeway {
		return nil, nil, authnf("the %s expires more than %s ahead", want.kind, want.maxLifetime)
	}
	if want.requireSub && claims.Subject != claims.Issuer {
		return nil, nil, authnf("the %s's sub must equal its iss (the client id)", want.kind)
	}
	if want.requireIat && claims.IssuedAt == nil {
		return nil, nil, authnf("the %s has no iat", want.kind)
	}
	if claims.ID == "" || len(claims.ID) > 256 {
		return nil, nil, authnf("the %s has no jti", want.kind)
	}
	err := s.cfg.Store.UseJTI(ctx, claims.Issuer+"|"+claims.ID, claims.ExpiresAt.Add(s.cfg.Leeway))
	if errors.Is(err, store.ErrDuplicate) {
		return nil, nil, authnf("the %s's jti was used before", want.kind)
	}
	if err != nil {
		return nil, nil, err
	}
	return client, &claims, nil
}

// clientKeys finds the JWK Set to verify a client's JWT with: the jku when
// the client allow-lists it (any other jku fails), else the registered set.
func (s *Service) clientKeys(ctx context.Context, c *store.Client, header map[string]any, kid string) ([]jwkset.JWK, error) {
	if v, ok := header["jku"]; ok {
		jku, _ := v.(string)
		if jku == "" || !slices.Contains(c.JKUAllow, jku) {
			return nil, authnf("the jku is not on this client's allow list")
		}
		keys, err := s.jwks.keys(ctx, jku, kid)
		if err != nil {
			s.log.WarnContext(ctx, "client JWK Set unavailable", "client", c.ID, "err", err)
			return nil, authnf("the client's JWK Set at its jku could not be read")
		}
		return keys, nil
	}
	if c.JWKSURL != "" {
		keys, err := s.jwks.keys(ctx, c.JWKSURL, kid)
		if err != nil {
			s.log.WarnContext(ctx, "client JWK Set unavailable", "client", c.ID, "err", err)
			return nil, authnf("the client's registered JWK Set URL could not be read")
		}
		return keys, nil
	}
	keys, err := ParseJWKS([]byte(c.JWKS))
	if err != nil {
		return nil, fmt.Errorf("auth: registered JWK Set of %s: %w", c.ID, err)
	}
	return keys, nil
}

// jwtReason turns a jwt/v5 validation error into a short safe reason.
func jwtReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature or algorithm not accepted"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "cannot be verified"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "a required claim is missing"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet (nbf in the future)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "issued in the future (iat)"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong aud"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong iss"
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return "invalid claims"
	}
	return "invalid"
}

func jsonOf(v any) ([]byte, error) { return json.Marshal(v) }
