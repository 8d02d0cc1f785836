package server

import (
	"errors"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/fhir"
	"github.com/priora/priora/pas"
)

// Authentication and authorization at the HTTP edge (the token endpoint is
// in token.go, the audit trail in audit.go).
//
// Every route declares what it requires where it is registered (routes.go).
// The /fhir, /review and /admin routes that are not public need an access
// token from POST /auth/token (SMART Backend Services). A missing or bad
// token is 401 with WWW-Authenticate; a token whose scopes do not cover the
// route is 403. The token's client and organization become the caller
// (pas.Caller), so every handler reads and writes only that tenant's data;
// another tenant's resource is answered 404, as if it did not exist, so
// that ids of other organizations cannot be probed. CDS Hooks calls carry
// the EHR's own JWT instead (cdsAuth).

const ctxAccess = "priora.access"

// authenticate guards a route group: it verifies the access token, makes
// its client the caller and checks the route's requirement (routes.go).
// Public routes pass; with InsecureDev every request passes as the
// "default" tenant. A route registered without a requirement is refused.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ri, known := s.route(c)
		if known && ri.need.public {
			return next(c)
		}
		if s.cfg.InsecureDev {
			if err := s.allow(c, ipKey(c)); err != nil {
				return err
			}
			extendRead(c)
			return next(c)
		}
		if s.cfg.Auth == nil {
			return errors.New("server: authentication is on but no auth service is configured")
		}
		raw, ok := auth.BearerToken(c.Request().Header.Get(echo.HeaderAuthorization))
		if !ok {
			if err := s.allow(c, ipKey(c)); err != nil {
				return err
			}
			return fhir.Errorf(fhir.Unauthorized, "send Authorization: Bearer <access token> (SMART Backend Services, token endpoint %s)", s.cfg.Auth.TokenURL())
		}
		acc, err := s.cfg.Auth.VerifyAccess(c.Request().Context(), raw)
		if err != nil {
			if fhir.KindOf(err) != fhir.Unauthorized {
				return err
			}
			if err := s.allow(c, ipKey(c)); err != nil {
				return err
			}
			return err
		}
		if err := s.allow(c, "client:"+acc.Client.ID); err != nil {
			return err
		}
		if acc.Tenant == "" { // "" means every tenant to the store: never a caller's
			return fhir.Errorf(fhir.Forbidden, "the client has no organization")
		}
		c.Set(ctxCaller, pas.Caller{Tenant: acc.Tenant, Client: acc.Client.ID, Test: acc.Client.Test})
		c.Set(ctxAccess, acc)
		switch {
		case known:
			if err := ri.need.check(c, acc); err != nil {
				return err
			}
		case !s.notFound[c.Path()]:
			// echo's method-not-allowed answer on a registered path:
			// closed, like any route without a requirement for the method.
			return fhir.CodedErrorf(fhir.Forbidden, "insufficient_scope", "the access token's scopes do not allow %s %s", c.Request().Method, c.Path())
		}
		extendRead(c)
		return next(c)
	}
}

// access is the verified token of the request, nil without one.
func access(c echo.Context) *auth.Access {
	a, _ := c.Get(ctxAccess).(*auth.Access)
	return a
}

// cdsAuth verifies the JWT of CDS Hooks service calls and feedback (CDS
// Hooks 2.0 "Trusting CDS Clients"): aud must be the exact URL of the
// endpoint called. Public routes (discovery, CORS preflights) pass; so does
// every call with InsecureDev. Failures are 401 in the CDS Hooks error shape.
func (s *Server) cdsAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ri, known := s.route(c)
		if !known || ri.need.public {
			return next(c) // unknown routes answer 404 or 405
		}
		if s.cfg.InsecureDev {
			extendRead(c)
			return next(c)
		}
		if s.cfg.Auth == nil {
			return errors.New("server: authentication is on but no auth service is configured")
		}
		endpoint := s.cfg.BaseURL + strings.Replace(c.Path(), ":id", c.Param("id"), 1)
		client, err := s.cfg.Auth.VerifyHook(c.Request().Context(), c.Request().Header.Get(echo.HeaderAuthorization), endpoint)
		if err != nil {
			if fhir.KindOf(err) != fhir.Unauthorized {
				return err
			}
			if rl := s.allow(c, ipKey(c)); rl != nil {
				return rl
			}
			return err
		}
		if rl := s.allow(c, "client:"+client.ID); rl != nil {
			return rl
		}
		if client.Org == "" {
			return fhir.Errorf(fhir.Forbidden, "the client has no organization")
		}
		if auth.KindOf(client) != auth.KindProvider {
			return fhir.Errorf(fhir.Forbidden, "CDS Hooks are called by provider clients (EHRs); %s is a %s client", client.ID, auth.KindOf(client))
		}
		c.Set(ctxCaller, pas.Caller{Tenant: client.Org, Client: client.ID, Test: client.Test})
		c.Set(ctxAccess, &auth.Access{Client: client, Kind: auth.KindProvider, Tenant: client.Org})
		extendRead(c)
		return next(c)
	}
}
