package server

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/hooks"
)

// hookRoutes registers the CDS Hooks endpoints (CRD). They speak CDS Hooks,
// not FHIR REST: errors are an HTTP status with a small JSON body
// {"error": "..."}, written here rather than by renderError.
//
// Client authentication (CDS Hooks JWTs) belongs in the group's middleware
// list, after cdsCORS, so that it guards discovery, calls and feedback alike.
func (s *Server) hookRoutes(e *echo.Echo) {
	if s.cfg.Hooks == nil {
		return
	}
	g := e.Group("/cds-services", s.cdsCORS, s.audit, s.cdsAuth)
	g.GET("", s.cdsDiscovery)
	g.POST("/:id", s.cdsCall)
	g.POST("/:id/feedback", s.cdsFeedback)
	for _, p := range []string{"", "/:id", "/:id/feedback"} {
		g.OPTIONS(p, s.cdsPreflight)
	}
}

// cdsCORS lets browser-based EHR clients call the CDS services. No cookies
// are involved (clients authenticate with bearer JWTs), so any origin may
// call; credentials are never allowed.
func (s *Server) cdsCORS(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Expose-Headers", "X-Request-Id")
		h.Add("Vary", "Origin")
		return next(c)
	}
}

func (s *Server) cdsPreflight(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, X-Request-Id")
	h.Set("Access-Control-Max-Age", "86400")
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) cdsDiscovery(c echo.Context) error {
	return c.JSONBlob(http.StatusOK, s.cfg.Hooks.Discovery())
}

func (s *Server) cdsCall(c echo.Context) error {
	body, ok := s.readCDS(c)
	if !ok {
		return nil
	}
	ans, err := s.cfg.Hooks.Call(c.Request().Context(), c.Param("id"), cdsCaller(c), body)
	if err != nil {
		return s.cdsError(c, err)
	}
	logAttrs(c, "assertions", len(ans.Assertions))
	return c.JSONBlob(http.StatusOK, ans.Body)
}

func (s *Server) cdsFeedback(c echo.Context) error {
	body, ok := s.readCDS(c)
	if !ok {
		return nil
	}
	if err := s.cfg.Hooks.Feedback(c.Request().Context(), c.Param("id"), cdsCaller(c), body); err != nil {
		return s.cdsError(c, err)
	}
	return c.JSONBlob(http.StatusOK, []byte(`{}`))
}

// readCDS reads a CDS Hooks JSON body, answering the error itself when the
// body cannot be read; ok is false when it did.
func (s *Server) readCDS(c echo.Context) ([]byte, bool) {
	r := c.Request()
	if ct := r.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !isJSON(mt) {
			_ = writeCDSError(c, http.StatusUnsupportedMediaType, "send application/json")
			return nil, false
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, s.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			_ = writeCDSError(c, http.StatusRequestEntityTooLarge, "the request body is too large")
		} else {
			_ = writeCDSError(c, http.StatusBadRequest, "the request body could not be read")
		}
		return nil, false
	}
	if err := fhir.Scan(body, s.cfg.Limits.JSON); err != nil {
		msg := err.Error()
		if is := fhir.IssuesOf(err); len(is) > 0 {
			msg = is[0].Diagnostics
			if is[0].Expression != "" {
				msg += " (at " + is[0].Expression + ")"
			}
		}
		_ = writeCDSError(c, fhir.KindOf(err).Status(), msg)
		return nil, false
	}
	return body, true
}

// cdsError writes a hooks error; anything that is not a *hooks.Error is an
// internal failure whose details stay in the log.
func (s *Server) cdsError(c echo.Context, err error) error {
	var he *hooks.Error
	if !errors.As(err, &he) {
		he = &hooks.Error{Status: http.StatusInternalServerError, Message: "internal server error", Err: err}
	}
	if he.Status >= 500 {
		s.log.ErrorContext(c.Request().Context(), "cds hook failed", "request_id", requestID(c), "err", err)
		return writeCDSError(c, he.Status, "internal server error")
	}
	return writeCDSError(c, he.Status, he.Message)
}

func writeCDSError(c echo.Context, status int, msg string) error {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return c.JSONBlob(status, b)
}

// cdsCaller is the authenticated CDS client, once client JWTs are checked.
func cdsCaller(c echo.Context) hooks.Caller {
	who := caller(c)
	return hooks.Caller{Tenant: who.Tenant, Client: who.Client}
}
