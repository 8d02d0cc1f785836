package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/store"
)

// reviewTenant limits reviewers to their tenant once authentication says
// who they are; until then every task is visible.
func reviewTenant(c echo.Context) string {
	if v, ok := c.Get(ctxCaller).(pas.Caller); ok {
		return v.Tenant
	}
	return ""
}

func (s *Server) reviewQueue(c echo.Context) error {
	q := c.QueryParams()
	f := store.ReviewFilter{Status: q.Get("status"), Sort: q.Get("sort"), Tenant: reviewTenant(c)}
	switch f.Status {
	case "", "open":
		f.Status = "pended"
	case "all":
		f.Status = ""
	case "pended", "complete", "cancelled":
	default:
		return fhir.InvalidAt("value", "status", "status must be open, pended, complete, cancelled or all")
	}
	switch f.Test = q.Get("test"); f.Test {
	case "", "include", "only":
	default:
		return fhir.InvalidAt("value", "test", "test must be include or only (test data is left out by default)")
	}
	if f.Sort != "" && f.Sort != "due" && f.Sort != "age" {
		return fhir.InvalidAt("value", "sort", "sort must be due or age")
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 500 {
			return fhir.InvalidAt("value", "limit", "limit must be a number from 1 to 500")
		}
		f.Limit = int64(n)
	}
	tasks, err := s.cfg.PAS.Queue(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"tasks": tasks})
}

func (s *Server) reviewTask(c echo.Context) error {
	id := c.Param("id")
	if !validID(id) {
		return fhir.Errorf(fhir.NotFound, "no such task")
	}
	t, err := s.cfg.PAS.Task(c.Request().Context(), reviewTenant(c), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, t)
}

func (s *Server) reviewDecision(c echo.Context) error {
	id := c.Param("id")
	if !validID(id) {
		return fhir.Errorf(fhir.NotFound, "no such task")
	}
	body, err := s.readFHIR(c)
	if err != nil {
		return err
	}
	var d pas.ReviewDecision
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return fhir.InvalidAt("structure", "", "the decision is not valid JSON of the documented shape: %s", fhir.JSONProblem(err))
	}
	ans, err := s.cfg.PAS.Decide(c.Request().Context(), reviewTenant(c), id, d)
	if err != nil {
		return err
	}
	logAttrs(c, "authorization", ans.Authorization, "outcome", ans.Outcome)
	return writeFHIR(c, http.StatusOK, ans.Body)
}
