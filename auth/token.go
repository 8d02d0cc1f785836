package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/priora/priora/store"
)

// The client assertion type of RFC 7523.
const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Priora signs access tokens with ES384 keys of its own.
const ownAlg = "ES384"

// accessTokenType is the JWT typ of Priora's access tokens (RFC 9068); a
// client assertion can never pass for one, nor the other way round.
const accessTokenType = "at+jwt"

// TokenResponse is the token endpoint's answer (SMART Backend Services
// "Issue Access Token"). No refresh token is issued.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
}

// Issued is an issued token with the client it went to (for the audit).
type Issued struct {
	Response TokenResponse
	Client   string
	Tenant   string
}

// IssueToken answers a client_credentials token request (the form of the
// POST): it authenticates the client by its assertion and grants the
// requested scopes that the client is allowed. Errors are *fhir.Error with an OAuth
// error Code (for the client) or failures of Priora's own.
func (s *Service) IssueToken(ctx context.Context, form url.Values) (*Issued, error) {
	for k, v := range form {
		if len(v) > 1 {
			return nil, oauthErr("invalid_request", "parameter "+k+" is repeated")
		}
	}
	switch gt := form.Get("grant_type"); gt {
	case "client_credentials":
	case "":
		return nil, oauthErr("invalid_request", "grant_type is required")
	default:
		return nil, oauthErr("unsupported_grant_type", "only client_credentials is supported")
	}
	if form.Get("client_assertion_type") != assertionType {
		return nil, oauthErr("invalid_client", "client_assertion_type must be "+assertionType)
	}
	requested := form.Get("scope")
	if strings.TrimSpace(requested) == "" {
		return nil, oauthErr("invalid_scope", "scope is required")
	}
	if len(requested) > 4096 {
		return nil, oauthErr("invalid_scope", "scope is too long")
	}
	c, claims, err := s.verifyClientJWT(ctx, form.Get("client_assertion"), clientJWT{
		aud: s.TokenURL(), maxLifetime: 5 * time.Minute, requireSub: true, kind: "client assertion",
	})
	if err != nil {
		if ae := authnOf(err); ae != nil {
			return nil, oauthErr("invalid_client", ae.Message)
		}
		return nil, err
	}
	if id := form.Get("client_id"); id != "" && id != claims.Issuer {
		return nil, oauthErr("invalid_client", "client_id does not match the assertion's iss")
	}
	granted := Allowed(c, ParseScopes(requested))
	if len(granted) == 0 {
		desc := "none of the requested scopes is allowed for this client"
		if KindOf(c) != KindPayer && slices.ContainsFunc(strings.Fields(requested), PayerOnly) {
			desc += " (priora/review and priora/admin are granted only to payer clients)"
		}
		return nil, oauthErr("invalid_scope", desc)
	}
	now := s.cfg.Now()
	exp := now.Add(s.cfg.TokenLifetime)
	tok, err := s.keys.sign(ctx, accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.BaseURL,
			Subject:   c.ID,
			Audience:  jwt.ClaimStrings{s.cfg.BaseURL},
			ExpiresAt: jwt.NewNumericDate(exp),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        randomID(),
		},
		ClientID: c.ID,
		Tenant:   c.Org,
		Scope:    granted.String(),
	})
	if err != nil {
		return nil, err
	}
	return &Issued{
		Response: TokenResponse{AccessToken: tok, TokenType: "bearer", ExpiresIn: int(s.cfg.TokenLifetime / time.Second), Scope: granted.String()},
		Client:   c.ID,
		Tenant:   c.Org,
	}, nil
}

// Allowed mediates requested scopes against the client's current
// registration: what its registered scopes allow, without the payer-only
// scopes unless it is a payer client (a registry edited by hand may give a
// provider priora/review; it is never granted nor honoured).
func Allowed(c *store.Client, requested Scopes) Scopes {
	granted := Grant(requested, ParseScopes(strings.Join(c.Scopes, " ")))
	if KindOf(c) == KindPayer {
		return granted
	}
	return slices.DeleteFunc(granted, func(s Scope) bool { return PayerOnly(s.Raw) })
}

// accessClaims are the claims of Priora's access tokens.
type accessClaims struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id"`
	Tenant   string `json:"tenant"`
	Scope    string `json:"scope"`
}

// Access is a verified access token: who calls (the client and its
// principal kind), for which tenant, with which scopes.
type Access struct {
	Client *store.Client
	// Kind is KindProvider or KindPayer.
	Kind    string
	Tenant  string
	Scopes  Scopes
	Expires time.Time
}

// Payer reports whether the caller is one of the payer's own systems.
func (a *Access) Payer() bool { return a != nil && a.Kind == KindPayer }

// VerifyAccess checks an access token Priora issued: its signature by one
// of Priora's keys, typ, iss, aud, expiry, and that its client is still
// registered, enabled and of the same organization. The client's
// registration is read fresh on every call (one lookup by _id), so that a
// disabled client is refused and narrowed scopes or a changed kind apply at
// once: the scopes of the Access are the token's scopes still allowed by
// the current registration. An Unauthorized *fhir.Error means the token is
// not good; other errors are Priora's.
func (s *Service) VerifyAccess(ctx context.Context, raw string) (*Access, error) {
	if raw == "" || len(raw) > 8<<10 {
		return nil, authnf("the access token is missing or too long")
	}
	var storeErr error
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{ownAlg}),
		jwt.WithIssuer(s.cfg.BaseURL),
		jwt.WithAudience(s.cfg.BaseURL),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(5*time.Second),
		jwt.WithTimeFunc(s.cfg.Now),
	)
	var claims accessClaims
	_, err := p.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != accessTokenType {
			return nil, authnf("not an access token")
		}
		kid, _ := t.Header["kid"].(string)
		k, err := s.keys.public(ctx, kid)
		if err != nil {
			if authnOf(err) == nil {
				storeErr = err
			}
			return nil, err
		}
		return k, nil
	})
	if err != nil {
		if storeErr != nil {
			return nil, storeErr
		}
		if ae := authnOf(err); ae != nil {
			return nil, ae
		}
		return nil, authnf("the access token is not valid: %s", jwtReason(err))
	}
	if claims.ExpiresAt.Sub(s.cfg.Now()) > 300*time.Second+5*time.Second {
		return nil, authnf("the access token lives too long")
	}
	c, err := s.clients.get(ctx, claims.Subject, true)
	if errors.Is(err, errNoClient) {
		return nil, authnf("the token's client is not registered or is disabled")
	}
	if err != nil {
		return nil, err
	}
	if c.Org != claims.Tenant || c.ID != claims.ClientID {
		return nil, authnf("the token's client changed organization; get a new token")
	}
	scopes := Allowed(c, ParseScopes(claims.Scope))
	return &Access{Client: c, Kind: KindOf(c), Tenant: c.Org, Scopes: scopes, Expires: claims.ExpiresAt.Time}, nil
}

// VerifyHook checks the Authorization header value of a CDS Hooks call
// ("Bearer <JWT>", CDS Hooks 2.0 "Trusting CDS Clients"): the JWT's iss is
// a registered client (the EHR), its key comes from the allow-listed jku or
// the registered JWK Set, aud is endpoint (the exact URL of the service
// called), and exp, iat and jti are present and good, the jti unseen. An
// Unauthorized *fhir.Error means the call is not authenticated.
func (s *Service) VerifyHook(ctx context.Context, authorization, endpoint string) (*store.Client, error) {
	raw, ok := BearerToken(authorization)
	if !ok {
		return nil, authnf("send Authorization: Bearer <JWT>")
	}
	c, _, err := s.verifyClientJWT(ctx, raw, clientJWT{
		aud: endpoint, maxLifetime: s.cfg.HookMaxLifetime, requireIat: true, kind: "CDS Hooks JWT",
	})
	return c, err
}

// BearerToken takes the token out of an Authorization header value.
func BearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || strings.ContainsAny(tok, " \t") {
		return "", false
	}
	return tok, true
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// signer holds Priora's signing keys, loaded from the store. The current
// key signs; every key not yet deleted verifies and is published.
type signer struct {
	st  Store
	now func() time.Time

	mu      sync.RWMutex
	current *ownKey
	all     map[string]*ownKey
	loaded  time.Time
}

type ownKey struct {
	kid     string
	priv    *ecdsa.PrivateKey
	retired *time.Time
}

// load reads the keys; with create, it makes the first key when there is
// none.
func (k *signer) load(ctx context.Context, create bool) error {
	for range 3 {
		keys, cur, err := k.st.SigningKeys(ctx)
		if err != nil {
			return err
		}
		if cur == "" && create {
			if _, err := k.add(ctx, ""); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
			continue // another process may have won; read again
		}
		all := map[string]*ownKey{}
		for _, sk := range keys {
			priv, err := parsePrivate(sk.Private)
			if err != nil {
				return fmt.Errorf("auth: signing key %s: %w", sk.KID, err)
			}
			all[sk.KID] = &ownKey{kid: sk.KID, priv: priv, retired: sk.Retired}
		}
		k.mu.Lock()
		k.all, k.current, k.loaded = all, all[cur], k.now()
		k.mu.Unlock()
		if k.current == nil {
			return fmt.Errorf("auth: the current signing key %q is missing", cur)
		}
		return nil
	}
	return errors.New("auth: could not settle on a signing key")
}

// add generates a key and makes it current in place of previous.
func (k *signer) add(ctx context.Context, previous string) (string, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	sk := &store.SigningKey{
		KID:     randomID(),
		Alg:     ownAlg,
		Private: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		Created: k.now(),
	}
	return sk.KID, k.st.AddSigningKey(ctx, sk, previous, k.now())
}

func parsePrivate(p string) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode([]byte(p))
	if b == nil {
		return nil, errors.New("not PEM")
	}
	key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P384() {
		return nil, errors.New("not a P-384 key")
	}
	return ec, nil
}

func (k *signer) sign(ctx context.Context, claims accessClaims) (string, error) {
	k.mu.RLock()
	cur := k.current
	k.mu.RUnlock()
	t := jwt.NewWithClaims(jwt.SigningMethodES384, claims)
	t.Header["kid"] = cur.kid
	t.Header["typ"] = accessTokenType
	return t.SignedString(cur.priv)
}

// public is the verification key for kid; an unknown kid reloads the keys
// (at most every 10 s), for keys rotated by another process.
func (k *signer) public(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	k.mu.RLock()
	key, ok := k.all[kid]
	stale := k.now().Sub(k.loaded) > 10*time.Second
	k.mu.RUnlock()
	if !ok && stale && kid != "" && len(kid) <= 64 {
		if err := k.load(ctx, false); err != nil {
			return nil, err
		}
		k.mu.RLock()
		key, ok = k.all[kid]
		k.mu.RUnlock()
	}
	if !ok {
		return nil, authnf("the access token's kid is not one of Priora's keys")
	}
	return &key.priv.PublicKey, nil
}

// JWKS is Priora's public JWK Set, for verifying its access tokens.
func (s *Service) JWKS() ([]byte, error) {
	s.keys.mu.RLock()
	defer s.keys.mu.RUnlock()
	var keys []jwkset.JWK
	for _, k := range s.keys.all {
		j, err := jwkset.NewJWKFromKey(&k.priv.PublicKey, jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: k.kid, ALG: jwkset.ALG(ownAlg), USE: jwkset.UseSig},
		})
		if err != nil {
			return nil, err
		}
		keys = append(keys, j)
	}
	return PublicJWKS(keys)
}

// RotateKey makes a new signing key current; the old one keeps verifying
// (and stays published) until Sweep deletes it, after every token it
// signed has expired. A running server picks the new key up within a
// minute (Sweep reloads keys).
func (s *Service) RotateKey(ctx context.Context) (string, error) {
	if err := s.keys.load(ctx, true); err != nil {
		return "", err
	}
	s.keys.mu.RLock()
	prev := s.keys.current.kid
	s.keys.mu.RUnlock()
	kid, err := s.keys.add(ctx, prev)
	if err != nil {
		return "", err
	}
	return kid, s.keys.load(ctx, false)
}

// Sweep is the periodic housekeeping of auth: it reloads the signing keys
// (picking up a rotation done by another process) and deletes keys retired
// for longer than any token they signed can live.
func (s *Service) Sweep(ctx context.Context) error {
	if err := s.keys.load(ctx, false); err != nil {
		return err
	}
	s.keys.mu.RLock()
	var old []string
	for _, k := range s.keys.all {
		if k.retired != nil && s.cfg.Now().Sub(*k.retired) > s.cfg.TokenLifetime+10*time.Minute {
			old = append(old, k.kid)
		}
	}
	s.keys.mu.RUnlock()
	for _, kid := range old {
		if err := s.cfg.Store.DeleteSigningKey(ctx, kid); err != nil {
			return err
		}
	}
	if len(old) > 0 {
		return s.keys.load(ctx, false)
	}
	return nil
}
