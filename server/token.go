package server

import (
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/fhir"
	"github.com/priora/priora/pas"
)

// The SMART configuration, Priora's JWK Set and the token endpoint.

// smartConfiguration is GET [/fhir]/.well-known/smart-configuration
// (SMART App Launch 2 "Metadata"): always application/json.
func (s *Server) smartConfiguration(c echo.Context) error {
	algs := []string{"RS384", "ES384"}
	if s.cfg.Auth != nil {
		algs = s.cfg.Auth.Algs()
	}
	return c.JSON(http.StatusOK, map[string]any{
		"issuer":                                s.cfg.BaseURL,
		"jwks_uri":                              s.cfg.BaseURL + auth.JWKSPath,
		"token_endpoint":                        s.cfg.BaseURL + auth.TokenPath,
		"grant_types_supported":                 []string{"client_credentials"},
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": algs,
		"scopes_supported": []string{
			"system/Claim.c", "system/Claim.r", "system/ClaimResponse.r", "system/ClaimResponse.rs",
			"system/Subscription.cruds", "system/Subscription.rs",
			"system/Claim.write", "system/Claim.read", "system/ClaimResponse.read", "system/Subscription.read",
			"system/Subscription.write", "system/Subscription.*",
			auth.ScopeReview, auth.ScopeAdmin,
		},
		"response_types_supported":         []string{"token"},
		"capabilities":                     []string{"client-confidential-asymmetric", "permission-v2", "permission-v1"},
		"code_challenge_methods_supported": []string{"S256"},
	})
}

// jwks is GET /auth/jwks: the keys that verify Priora's access tokens.
func (s *Server) jwks(c echo.Context) error {
	if s.cfg.Auth == nil {
		return fhir.Errorf(fhir.NotFound, "no such endpoint")
	}
	b, err := s.cfg.Auth.JWKS()
	if err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, b)
}

// token is POST /auth/token (SMART Backend Services, client_credentials
// with a private_key_jwt client assertion). Errors are rendered as RFC 6749
// §5.2 errors (routes.go registers the route in the OAuth family); their
// OAuth code travels as the *fhir.Error's Code.
func (s *Server) token(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	// The token endpoint has buckets of its own, so that junk sent to
	// other endpoints from the same address cannot starve it: one per
	// address before the assertion is checked, one per client after.
	if err := s.allowToken(c, ipKey(c)); err != nil {
		return err
	}
	if s.cfg.Auth == nil {
		return fhir.Errorf(fhir.Unavailable, "the authorization server is not configured")
	}
	r := c.Request()
	mt, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if mt != "application/x-www-form-urlencoded" {
		return fhir.CodedErrorf(fhir.Invalid, "invalid_request", "send application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return fhir.CodedErrorf(fhir.Invalid, "invalid_request", "the form could not be read")
	}
	issued, err := s.cfg.Auth.IssueToken(r.Context(), r.PostForm)
	if err != nil {
		if fe := fhir.AsError(err); fe.Code != "" {
			logAttrs(c, "oauth_error", fe.Code)
		}
		return err
	}
	c.Set(ctxCaller, pas.Caller{Tenant: issued.Tenant, Client: issued.Client})
	if err := s.allowToken(c, "client:"+issued.Client); err != nil {
		logAttrs(c, "oauth_error", "slow_down")
		return err
	}
	logAttrs(c, "client", issued.Client, "scope", issued.Response.Scope)
	return c.JSON(http.StatusOK, issued.Response)
}
