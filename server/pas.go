package server

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/pas"
)

// submit is POST /fhir/Claim/$submit.
func (s *Server) submit(c echo.Context) error {
	body, err := s.readFHIR(c)
	if err != nil {
		return err
	}
	who := caller(c)
	ans, err := s.cfg.PAS.Submit(c.Request().Context(), who, body)
	if err != nil {
		return err
	}
	logAttrs(c, "authorization", ans.Authorization, "outcome", ans.Outcome, "replayed", ans.Replayed)
	if ans.Rules != "" {
		logAttrs(c, "rules", "rules "+ans.Rules)
	}
	return writeFHIR(c, http.StatusOK, ans.Body)
}

// caller is who is calling; until authentication is configured every
// request belongs to the default tenant.
func caller(c echo.Context) pas.Caller {
	if v, ok := c.Get(ctxCaller).(pas.Caller); ok {
		return v
	}
	return pas.Caller{Tenant: "default", Client: "anonymous"}
}

// inquire is POST /fhir/Claim/$inquire.
func (s *Server) inquire(c echo.Context) error {
	body, err := s.readFHIR(c)
	if err != nil {
		return err
	}
	ans, err := s.cfg.PAS.Inquire(c.Request().Context(), caller(c), body)
	if err != nil {
		return err
	}
	logAttrs(c, "result", ans.Outcome)
	return writeFHIR(c, http.StatusOK, ans.Body)
}
