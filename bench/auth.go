package bench

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Auth is how the load tool authenticates. With a client id and key it
// does what an EHR does: a SMART Backend Services access token for PAS
// (refreshed before it expires) and a freshly signed JWT for every CDS
// Hooks call. A static Token is sent as is to the FHIR endpoints (CDS
// Hooks calls need the key).
type Auth struct {
	Token    string
	ClientID string
	// Signer, Alg and KID are the client's private key (see
	// suite.ParseSigningKey).
	Signer crypto.Signer
	Alg    string
	KID    string
	Scope  string

	client   *http.Client
	tokenURL string
	mu       sync.Mutex
	access   string
	expires  time.Time
}

func (a *Auth) describe() string {
	switch {
	case a.Signer != nil:
		return "SMART backend token + CDS Hooks JWT per call (" + a.Alg + ")"
	case a.Token != "":
		return "static bearer token"
	}
	return "none"
}

func (a *Auth) start(ctx context.Context, c *http.Client, base string) error {
	a.client = c
	if a.Signer == nil {
		return nil
	}
	if a.ClientID == "" {
		return errors.New("load: a client key needs a client id")
	}
	if a.Scope == "" {
		a.Scope = "system/Claim.c system/ClaimResponse.r"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/fhir/.well-known/smart-configuration", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("load: SMART configuration: %w", err)
	}
	defer resp.Body.Close()
	var conf struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&conf) != nil || conf.TokenEndpoint == "" {
		return fmt.Errorf("load: no token_endpoint in %s/fhir/.well-known/smart-configuration (status %d)", base, resp.StatusCode)
	}
	a.tokenURL = conf.TokenEndpoint
	_, err = a.bearer(ctx)
	return err
}

// authorize adds the Authorization header of one request.
func (a *Auth) authorize(ctx context.Context, req *http.Request, hook bool) error {
	if hook && a.Signer != nil {
		now := time.Now()
		tok, err := a.sign(jwt.MapClaims{"iss": a.ClientID, "aud": req.URL.String(), "iat": now.Unix(),
			"exp": now.Add(5 * time.Minute).Unix(), "jti": newJTI()})
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		return nil
	}
	tok := a.Token
	if a.Signer != nil {
		var err error
		if tok, err = a.bearer(ctx); err != nil {
			return err
		}
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return nil
}

// bearer returns a valid access token, fetching one when needed.
func (a *Auth) bearer(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.access != "" && time.Now().Before(a.expires) {
		return a.access, nil
	}
	now := time.Now()
	assertion, err := a.sign(jwt.MapClaims{"iss": a.ClientID, "sub": a.ClientID, "aud": a.tokenURL,
		"iat": now.Unix(), "exp": now.Add(4 * time.Minute).Unix(), "jti": newJTI()})
	if err != nil {
		return "", err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {a.Scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &tr) != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("token request: status %d: %.200s", resp.StatusCode, b)
	}
	ttl := max(time.Duration(tr.ExpiresIn)*time.Second, time.Minute)
	a.access, a.expires = tr.AccessToken, now.Add(ttl-30*time.Second)
	return a.access, nil
}

func (a *Auth) sign(claims jwt.MapClaims) (string, error) {
	m := jwt.GetSigningMethod(a.Alg)
	if m == nil {
		return "", fmt.Errorf("unsupported alg %q", a.Alg)
	}
	t := jwt.NewWithClaims(m, claims)
	t.Header["typ"] = "JWT"
	if a.KID != "" {
		t.Header["kid"] = a.KID
	}
	return t.SignedString(a.Signer)
}

func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
