package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

// auditTrail is GET /admin/audit?client=&tenant=&since=&limit=: audit
// records, newest first. since is RFC 3339; limit 1–1000 (default 100).
func (s *Server) auditTrail(c echo.Context) error {
	q := c.QueryParams()
	f := store.AuditFilter{Client: q.Get("client"), Tenant: q.Get("tenant")}
	if len(f.Client) > 200 || len(f.Tenant) > 64 {
		return fhir.InvalidAt("value", "client", "client or tenant is too long")
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return fhir.InvalidAt("value", "since", "since must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
		f.Since = t
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return fhir.InvalidAt("value", "limit", "limit must be a number from 1 to 1000")
		}
		f.Limit = int64(n)
	}
	recs, err := s.cfg.Store.Audit(c.Request().Context(), f)
	if err != nil {
		return err
	}
	logAttrs(c, "result", strconv.Itoa(len(recs))+" record(s)")
	return c.JSON(http.StatusOK, map[string]any{"records": recs})
}
