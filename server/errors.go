package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/fhir"
)

// renderError is the one place errors become HTTP responses. The status
// comes from the error's fhir.Kind; the body is in the wire format of the
// matched route's family: a FHIR OperationOutcome, a CDS Hooks error or an
// OAuth 2.0 error. Internal errors are logged and shown as "internal server
// error" only.
func (s *Server) renderError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		err = echoError(he)
	}
	e := fhir.AsError(err)
	if e.Kind == fhir.Internal {
		s.log.ErrorContext(c.Request().Context(), "request failed", "err", err)
	}
	ri, _ := s.route(c)
	h := c.Response().Header()
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(e.RetryAfter.Seconds())))))
	}
	if ch := challenge(e); ch != "" {
		h.Set("WWW-Authenticate", ch)
	}
	status := e.Kind.Status()
	switch ri.family {
	case cdsErrors:
		b, _ := json.Marshal(map[string]string{"error": fhir.SafeMessage(e)})
		_ = c.JSONBlob(status, b)
	case oauthErrors:
		b, _ := json.Marshal(map[string]string{"error": oauthCode(e), "error_description": fhir.SafeMessage(e)})
		_ = c.JSONBlob(status, b)
	default:
		_ = writeFHIR(c, status, fhir.OperationOutcome(fhir.IssuesOf(e)))
	}
}

// challenge is the WWW-Authenticate value for e (RFC 6750 §3): every
// Unauthorized error, and a Forbidden one for insufficient_scope, carry a
// Bearer challenge with the error's Code and message.
func challenge(e *fhir.Error) string {
	if e.Kind != fhir.Unauthorized && e.Code != "insufficient_scope" {
		return ""
	}
	v := `Bearer realm="priora"`
	if e.Code != "" {
		v += `, error="` + headerSafe(e.Code) + `", error_description="` + headerSafe(e.Message) + `"`
	}
	return v
}

// oauthCode is the RFC 6749 §5.2 error code for e: its own Code, else the
// one its kind implies.
func oauthCode(e *fhir.Error) string {
	if e.Code != "" {
		return e.Code
	}
	switch e.Kind {
	case fhir.Unauthorized:
		return "invalid_client"
	case fhir.TooMany:
		return "slow_down"
	case fhir.Unavailable:
		return "temporarily_unavailable"
	case fhir.Internal:
		return "server_error"
	}
	return "invalid_request"
}

func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return ' '
		}
		return r
	}, s)
}

func echoError(he *echo.HTTPError) error {
	msg := fmt.Sprint(he.Message)
	switch he.Code {
	case http.StatusNotFound:
		return fhir.Errorf(fhir.NotFound, "no such endpoint")
	case http.StatusMethodNotAllowed:
		return fhir.Errorf(fhir.MethodNotAllowed, "method not allowed on this endpoint")
	case http.StatusRequestEntityTooLarge:
		return fhir.Errorf(fhir.TooLarge, "the request body is too large")
	case http.StatusUnauthorized:
		return fhir.Errorf(fhir.Unauthorized, "%s", msg)
	case http.StatusForbidden:
		return fhir.Errorf(fhir.Forbidden, "%s", msg)
	case http.StatusTooManyRequests:
		return fhir.Errorf(fhir.TooMany, "too many requests")
	}
	if he.Code >= 400 && he.Code < 500 {
		return fhir.Errorf(fhir.Invalid, "%s", msg)
	}
	return fmt.Errorf("echo: %w", he)
}
