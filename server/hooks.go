package server

import (
	"errors"
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/hooks"
)

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
	body, err := s.readCDS(c)
	if err != nil {
		return err
	}
	who := cdsCaller(c)
	who.RequestID, who.Source = requestID(c), remoteIP(c)
	ans, err := s.cfg.Hooks.Call(c.Request().Context(), c.Param("id"), who, body)
	c.Set(ctxAudited, true) // the call record is the audit record
	if err != nil {
		return err
	}
	logAttrs(c, "assertions", len(ans.Assertions))
	defer ans.Release() // the body is copied out when written
	return c.JSONBlob(http.StatusOK, ans.Body)
}

func (s *Server) cdsFeedback(c echo.Context) error {
	body, err := s.readCDS(c)
	if err != nil {
		return err
	}
	if err := s.cfg.Hooks.Feedback(c.Request().Context(), c.Param("id"), cdsCaller(c), body); err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, []byte(`{}`))
}

// readCDS reads a CDS Hooks JSON body: the content type must be JSON, the
// body at most MaxBody bytes.
func (s *Server) readCDS(c echo.Context) ([]byte, error) {
	r := c.Request()
	if ct := r.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !isJSON(mt) {
			return nil, fhir.Errorf(fhir.Unsupported, "send application/json")
		}
	}
	body, err := readBody(c, s.cfg.MaxBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, fhir.Errorf(fhir.TooLarge, "the request body is too large")
		}
		return nil, fhir.Errorf(fhir.Invalid, "the request body could not be read")
	}
	if err := fhir.Scan(body, s.cfg.Limits.JSON); err != nil {
		return nil, err
	}
	return body, nil
}

// cdsCaller is the authenticated CDS client, once client JWTs are checked.
func cdsCaller(c echo.Context) hooks.Caller {
	who := caller(c)
	return hooks.Caller{Tenant: who.Tenant, Client: who.Client}
}
