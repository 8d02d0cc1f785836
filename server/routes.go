package server

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/conformance"
	"github.com/priora/priora/fhir"
)

// routes registers every endpoint Priora serves, in one place.
func (s *Server) routes() {
	e := s.echo
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)

	f := e.Group("/fhir", s.audit, s.authenticate)
	f.GET("/metadata", s.metadata)
	f.GET("/.well-known/smart-configuration", s.smartConfiguration)
	f.GET("/OperationDefinition/:id", s.operationDefinition)
	f.GET("/SubscriptionTopic/:id", s.subscriptionTopic)
	f.POST("/Claim/$submit", s.submit, s.heavyWork)
	s.subscriptionRoutes(f)
	f.POST("/Claim/$inquire", s.inquire, s.heavyWork)

	s.reviewRoutes(e.Group("/review", s.audit, s.authenticate))
	s.authRoutes(e)
	s.adminRoutes(e.Group("/admin", s.audit, s.authenticate))
	s.hookRoutes(e)
	if s.cfg.Desk != nil {
		desk := echo.WrapHandler(s.cfg.Desk)
		e.Any("/desk", desk)
		e.Any("/desk/*", desk)
	}
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	if err := s.cfg.Store.Ping(c.Request().Context()); err != nil {
		s.log.WarnContext(c.Request().Context(), "store ping failed", "err", err)
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "store unavailable"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) metadata(c echo.Context) error {
	if err := acceptsJSON(c.Request()); err != nil {
		return err
	}
	smart := s.cfg.Auth != nil && !s.cfg.InsecureDev
	return writeFHIR(c, http.StatusOK, conformance.CapabilityStatement(conformance.Server{
		BaseURL: s.cfg.BaseURL, Version: s.cfg.Version, Started: s.cfg.Started,
		SMART: smart, TokenURL: s.cfg.BaseURL + "/auth/token",
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
