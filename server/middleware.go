package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"regexp"
	"runtime/debug"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/internal/reqlog"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/store"
)

const (
	ctxCaller   = "priora.caller"
	ctxLogAttrs = "priora.log_attrs"
	// ctxAudited marks a request whose handler wrote its audit record
	// itself (a CDS Hooks call's record is its audit record).
	ctxAudited = "priora.audited"
)

var clientRequestID = regexp.MustCompile(`^[A-Za-z0-9._\-]{1,64}$`)

// requestID takes a well-formed X-Request-Id from the client or makes one,
// puts it on the request's context (with the route, the origin of the
// request's store commands) and echoes it in the response.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !clientRequestID.MatchString(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		// The route names the request's store commands (store.CommandCounts).
		ctx := store.WithOrigin(reqlog.With(c.Request().Context(), id), c.Request().Method+" "+c.Path())
		c.SetRequest(c.Request().WithContext(ctx))
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

// requestID is the request's id; it rides on the request's context, so
// every line logged with that context carries it (reqlog).
func requestID(c echo.Context) string { return reqlog.ID(c.Request().Context()) }

// logAttrs adds attributes to the request's access-log line. Callers pass
// identifiers of Priora's own making only, never patient data.
func logAttrs(c echo.Context, kv ...any) {
	prev, _ := c.Get(ctxLogAttrs).([]any)
	c.Set(ctxLogAttrs, append(prev, kv...))
}

// accessLog writes one line per request: method, route (not the raw path,
// which may carry identifiers), status, duration, request id, and the
// tenant and client once authenticated; and times the request for the
// metrics.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		attrs := []any{
			"method", c.Request().Method,
			"route", c.Path(),
			"status", c.Response().Status,
			"duration_ms", float64(time.Since(start).Microseconds()) / 1000,
			"bytes_in", c.Request().ContentLength,
			"bytes_out", c.Response().Size,
		}
		if who, ok := c.Get(ctxCaller).(pas.Caller); ok {
			attrs = append(attrs, "tenant", who.Tenant, "client", who.Client)
		}
		if extra, ok := c.Get(ctxLogAttrs).([]any); ok {
			attrs = append(attrs, extra...)
		}
		if s.cfg.Requests != nil {
			s.cfg.Requests.Request(c.Path(), c.Request().Method, c.Response().Status, time.Since(start))
		}
		level := slog.LevelInfo
		if c.Response().Status >= 500 {
			level = slog.LevelError
		}
		s.log.Log(c.Request().Context(), level, "request", attrs...)
		return nil
	}
}

// recover turns a panic into a 500 OperationOutcome and a logged stack.
func (s *Server) recover(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				s.log.ErrorContext(c.Request().Context(), "panic", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return next(c)
	}
}

func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}
