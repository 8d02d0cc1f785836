package bench

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net/http"

	"github.com/priora/priora/conformance/smart"
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
	// smart.ParseKey).
	Signer crypto.Signer
	Alg    string
	KID    string
	Scope  string

	key    *smart.Key
	tokens *smart.TokenSource
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
	if a.Signer == nil {
		return nil
	}
	if a.ClientID == "" {
		return errors.New("load: a client key needs a client id")
	}
	if a.Scope == "" {
		a.Scope = "system/Claim.c system/ClaimResponse.r"
	}
	a.key = &smart.Key{KID: a.KID, Alg: a.Alg, Signer: a.Signer}
	a.tokens = &smart.TokenSource{HTTP: c, FHIRBase: base + "/fhir", ClientID: a.ClientID, Key: a.key, Scope: a.Scope}
	if _, err := a.tokens.Token(ctx); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	return nil
}

// authorize adds the Authorization header of one request.
func (a *Auth) authorize(ctx context.Context, req *http.Request, hook bool) error {
	if hook && a.key != nil {
		tok, err := a.key.HookJWT(a.ClientID, req.URL.String())
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		return nil
	}
	tok := a.Token
	if a.tokens != nil {
		var err error
		if tok, err = a.tokens.Token(ctx); err != nil {
			return err
		}
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return nil
}
