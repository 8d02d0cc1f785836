package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/store"
)

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
		if done, _ := c.Get(ctxAudited).(bool); !done {
			s.writeAudit(c, start)
		}
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
			case "outcome", "result", "oauth_error", "rules":
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
