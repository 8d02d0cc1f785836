package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/fhir"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/store"
)

// Authentication and authorization at the HTTP edge.
//
// Every /fhir route except the public ones (metadata, SMART configuration,
// OperationDefinitions), every /review and /admin route needs an access
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
		c.Set(ctxCaller, pas.Caller{Tenant: acc.Tenant, Client: acc.Client.ID})
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
		c.Set(ctxCaller, pas.Caller{Tenant: client.Org, Client: client.ID})
		c.Set(ctxAccess, &auth.Access{Client: client, Tenant: client.Org})
		extendRead(c)
		return next(c)
	}
}

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

// audit records every access to a protected route or CDS Hooks call as an
// AuditEvent-shaped store.AuditRecord: who (client, tenant, address), what
// (route, method, the authorizations or subscriptions involved), when, the
// status and outcome, the request id. Rejected attempts are recorded too.
// The record is written after the response, synchronously; a failed write is
// logged as an error (the response cannot be taken back).
func (s *Server) audit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		m := c.Request().Method
		p := c.Path()
		if ri, _ := s.route(c); ri.need.public || m == http.MethodOptions || m == http.MethodHead || strings.HasSuffix(p, "/*") {
			return next(c)
		}
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		s.writeAudit(c, start)
		return nil
	}
}

func (s *Server) writeAudit(c echo.Context, start time.Time) {
	if s.cfg.Store == nil {
		return
	}
	r := c.Request()
	status := c.Response().Status
	rec := &store.AuditRecord{
		ID:        start.UTC().Format("20060102T150405.000000000Z") + "-" + auditSuffix(),
		Time:      start.UTC(),
		RequestID: requestID(c),
		Type:      auditType(c.Path()),
		Action:    auditAction(r.Method, c.Path()),
		Method:    r.Method,
		Route:     c.Path(),
		Status:    status,
		Outcome:   "0",
		Source:    remoteIP(c),
	}
	rec.Expires = rec.Time.Add(s.cfg.AuditRetention)
	switch {
	case status >= 500:
		rec.Outcome = "8"
	case status >= 400:
		rec.Outcome = "4"
	}
	if who, ok := c.Get(ctxCaller).(pas.Caller); ok {
		rec.Client, rec.Tenant = who.Client, who.Tenant
	} else if s.cfg.InsecureDev {
		who := caller(c)
		rec.Client, rec.Tenant = who.Client, who.Tenant
	}
	if kv, ok := c.Get(ctxLogAttrs).([]any); ok {
		for i := 0; i+1 < len(kv); i += 2 {
			k, _ := kv[i].(string)
			switch k {
			case "authorization", "subscription", "task":
				if v, ok := kv[i+1].(string); ok && v != "" {
					rec.Entities = append(rec.Entities, k+"/"+v)
				}
			case "outcome", "result", "oauth_error":
				rec.Detail = strings.TrimSpace(rec.Detail + " " + toString(kv[i+1]))
			}
		}
	}
	if id := c.Param("id"); id != "" && validID(id) && strings.HasPrefix(c.Path(), "/review/tasks/") {
		rec.Entities = append(rec.Entities, "authorization/"+id)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := s.cfg.Store.AddAudit(ctx, rec); err != nil {
		s.log.ErrorContext(ctx, "audit record not written", "err", err)
	}
}

// auditSuffix makes audit record ids unique (request ids come from clients
// and may repeat).
func auditSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case interface{ String() string }:
		return v.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func auditType(path string) string {
	switch {
	case strings.HasPrefix(path, "/fhir/"):
		return "rest"
	case strings.HasPrefix(path, "/review/"):
		return "review"
	case strings.HasPrefix(path, "/cds-services"):
		return "cds-hook"
	case strings.HasPrefix(path, "/admin/"):
		return "admin"
	case path == auth.TokenPath:
		return "token"
	}
	return "other"
}

// auditAction is AuditEvent.action: E for operations and hook calls, else
// by method.
func auditAction(method, path string) string {
	if strings.Contains(path, "$") || strings.HasPrefix(path, "/cds-services") || path == auth.TokenPath {
		return "E"
	}
	switch method {
	case http.MethodPost:
		if strings.HasSuffix(path, "/decision") {
			return "U"
		}
		return "C"
	case http.MethodPut, http.MethodPatch:
		return "U"
	case http.MethodDelete:
		return "D"
	}
	return "R"
}
