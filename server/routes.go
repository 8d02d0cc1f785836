package server

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/conformance"
	"github.com/priora/priora/fhir"
)

// routes registers every endpoint Priora serves, in one place, each with
// what it requires of its caller (requirement) and the wire format of its
// errors (family). A route registered any other way has no requirement:
// authenticate refuses it, and TestEveryRouteHasARequirement fails.
func (s *Server) routes() {
	e := s.echo
	top := s.group(e, fhirErrors)
	top.add(http.MethodGet, "/healthz", public(), s.healthz)
	top.add(http.MethodGet, "/readyz", public(), s.readyz)

	f := s.group(e.Group("/fhir", s.audit, s.authenticate, s.negotiate), fhirErrors)
	f.add(http.MethodGet, "/metadata", public(), s.metadata)
	f.add(http.MethodGet, "/.well-known/smart-configuration", public(), s.smartConfiguration)
	f.add(http.MethodGet, "/OperationDefinition/:id", public(), s.operationDefinition)
	f.add(http.MethodGet, "/SubscriptionTopic/:id", public(), s.subscriptionTopic)
	f.add(http.MethodPost, "/Claim/$submit", perm("Claim", auth.Create).only(auth.KindProvider), s.submit, s.heavyWork)
	f.add(http.MethodPost, "/Claim/$inquire", anyOf(perm("ClaimResponse", auth.Read), perm("Claim", auth.Read)), s.inquire, s.heavyWork)

	// R4 backport Subscriptions.
	f.add(http.MethodPost, "/Subscription", perm("Subscription", auth.Create), s.createSubscription)
	f.add(http.MethodGet, "/Subscription", perm("Subscription", auth.Search), s.searchSubscriptions)
	f.add(http.MethodGet, "/Subscription/$status", perm("Subscription", auth.Read), s.subscriptionStatus)
	f.add(http.MethodPost, "/Subscription/$status", perm("Subscription", auth.Read), s.subscriptionStatus)
	f.add(http.MethodGet, "/Subscription/:id", perm("Subscription", auth.Read), s.readSubscription)
	f.add(http.MethodPut, "/Subscription/:id", perm("Subscription", auth.Update), s.updateSubscription)
	f.add(http.MethodDelete, "/Subscription/:id", perm("Subscription", auth.Delete), s.deleteSubscription)
	f.add(http.MethodGet, "/Subscription/:id/$status", perm("Subscription", auth.Read), s.subscriptionStatus)
	f.add(http.MethodPost, "/Subscription/:id/$status", perm("Subscription", auth.Read), s.subscriptionStatus)
	f.methodsNotAllowed()

	// The review API that reviewers (and the desk) use to work pended
	// requests.
	rv := s.group(e.Group("/review", s.audit, s.authenticate), fhirErrors)
	rv.add(http.MethodGet, "/tasks", scope(auth.ScopeReview).only(auth.KindPayer), s.reviewQueue)
	rv.add(http.MethodGet, "/tasks/:id", scope(auth.ScopeReview).only(auth.KindPayer), s.reviewTask)
	rv.add(http.MethodPost, "/tasks/:id/decision", scope(auth.ScopeReview).only(auth.KindPayer), s.reviewDecision)
	rv.add(http.MethodPost, "/tasks/:id/claim", scope(auth.ScopeReview).only(auth.KindPayer), s.reviewAssignment("claim"))
	rv.add(http.MethodPost, "/tasks/:id/release", scope(auth.ScopeReview).only(auth.KindPayer), s.reviewAssignment("release"))
	rv.add(http.MethodPost, "/tasks/:id/assign", scope(auth.ScopeReview).only(auth.KindPayer), s.reviewAssignment("assign"))
	rv.add(http.MethodPost, "/tasks/:id/reopen", scope(auth.ScopeReview).only(auth.KindPayer), s.reviewReopen)
	rv.add(http.MethodPost, "/tasks/:id/documents", scope(auth.ScopeReview).only(auth.KindPayer), s.reviewAttach)
	if s.cfg.UMEvents != nil {
		rv.add(http.MethodGet, "/events", scope(auth.ScopeReview).only(auth.KindPayer), s.umEvents)
	}

	// SMART configuration, the token endpoint (OAuth 2.0 errors) and
	// Priora's public JWK Set.
	top.add(http.MethodGet, "/.well-known/smart-configuration", public(), s.smartConfiguration)
	s.group(e, oauthErrors).add(http.MethodPost, auth.TokenPath, ownAuth("client assertion (private_key_jwt)"), s.token, s.audit)
	top.add(http.MethodGet, auth.JWKSPath, public(), s.jwks)

	ad := s.group(e.Group("/admin", s.audit, s.authenticate), fhirErrors)
	ad.add(http.MethodGet, "/audit", scope(auth.ScopeAdmin).only(auth.KindPayer), s.auditTrail)
	ad.add(http.MethodPost, "/members", scope(auth.ScopeAdmin).only(auth.KindPayer), s.importMembers)
	ad.add(http.MethodGet, "/members/:id", scope(auth.ScopeAdmin).only(auth.KindPayer), s.member)
	ad.add(http.MethodGet, "/metrics/cms-0057-f", scope(auth.ScopeAdmin).only(auth.KindPayer), s.publicReport)
	if s.cfg.ReloadRules != nil {
		ad.add(http.MethodPost, "/rules/reload", scope(auth.ScopeAdmin).only(auth.KindPayer), s.reloadRules)
		ad.add(http.MethodGet, "/rules", scope(auth.ScopeAdmin).only(auth.KindPayer), s.rulesStatus)
	}

	// CDS Hooks (CRD) speak CDS Hooks, not FHIR REST: errors are a status
	// with {"error": "..."}. Calls and feedback carry the EHR's own JWT
	// (cdsAuth, after cdsCORS so that it guards calls and feedback alike);
	// discovery and CORS preflights are public.
	if s.cfg.Hooks != nil {
		g := s.group(e.Group("/cds-services", s.cdsCORS, s.audit, s.cdsAuth), cdsErrors)
		g.add(http.MethodGet, "", public(), s.cdsDiscovery)
		g.add(http.MethodPost, "/:id", ownAuth("CDS Hooks JWT"), s.cdsCall)
		g.add(http.MethodPost, "/:id/feedback", ownAuth("CDS Hooks JWT"), s.cdsFeedback)
		for _, p := range []string{"", "/:id", "/:id/feedback"} {
			g.add(http.MethodOptions, p, public(), s.cdsPreflight)
		}
	}
	// The reviewer desk has its own sign-in, sessions and error pages.
	if s.cfg.Desk != nil {
		desk := echo.WrapHandler(s.cfg.Desk)
		s.group(e, fhirErrors).any("/desk", ownAuth("desk session"), desk)
		s.group(e, fhirErrors).any("/desk/*", ownAuth("desk session"), desk)
	}
	for _, r := range e.Routes() {
		if r.Method == echo.RouteNotFound {
			s.notFound[r.Path] = true
		}
	}
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok", "version": s.cfg.Version})
}

func (s *Server) readyz(c echo.Context) error {
	if err := s.cfg.Store.Ping(c.Request().Context()); err != nil {
		s.log.WarnContext(c.Request().Context(), "store ping failed", "err", err)
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "store unavailable"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) metadata(c echo.Context) error {
	smart := s.cfg.Auth != nil && !s.cfg.InsecureDev
	return writeFHIR(c, http.StatusOK, conformance.CapabilityStatement(conformance.Server{
		BaseURL: s.cfg.BaseURL, Version: s.cfg.Version, Started: s.cfg.Started,
		SMART: smart, TokenURL: s.cfg.BaseURL + "/auth/token",
		Tolerances: s.cfg.Tolerances,
	}))
}

// subscriptionTopic serves the PAS SubscriptionTopic, an R5 resource that
// R4 packages carry as Basic (Subscriptions R5 Backport).
func (s *Server) subscriptionTopic(c echo.Context) error {
	if c.Param("id") != "PASSubscriptionTopic" {
		return fhir.Errorf(fhir.NotFound, "SubscriptionTopic/%s is not known", c.Param("id"))
	}
	return writeFHIR(c, http.StatusOK, conformance.SubscriptionTopic())
}

func (s *Server) operationDefinition(c echo.Context) error {
	b, ok := conformance.OperationDefinition(c.Param("id"))
	if !ok {
		return fhir.Errorf(fhir.NotFound, "OperationDefinition/%s is not known", c.Param("id"))
	}
	return writeFHIR(c, http.StatusOK, b)
}
