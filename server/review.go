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

// reviewer is the principal of a review API call and the tenant it sees.
// The review API is the payer's (its routes are for payer clients only): a
// payer client sees and decides the tasks of every provider tenant (tenant
// ""). Without authentication (InsecureDev) the anonymous caller is the
// principal. A provider client never gets here; should one, it is refused.
func reviewer(c echo.Context) (pas.Principal, string, error) {
	acc := access(c)
	if acc == nil {
		return pas.Principal{Client: caller(c).Client}, "", nil
	}
	if !acc.Payer() {
		return pas.Principal{}, "", fhir.Errorf(fhir.Forbidden, "the review API is for payer clients only")
	}
	return pas.Principal{Client: acc.Client.ID}, "", nil
}

func (s *Server) reviewQueue(c echo.Context) error {
	q := c.QueryParams()
	_, tenant, err := reviewer(c)
	if err != nil {
		return err
	}
	f := store.ReviewFilter{Status: q.Get("status"), Sort: q.Get("sort"), Tenant: tenant}
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
	_, tenant, err := reviewer(c)
	if err != nil {
		return err
	}
	t, err := s.cfg.PAS.Task(c.Request().Context(), tenant, id)
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
	by, tenant, err := reviewer(c)
	if err != nil {
		return err
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
	ans, err := s.cfg.PAS.Decide(c.Request().Context(), by, tenant, id, d)
	if err != nil {
		return err
	}
	logAttrs(c, "authorization", ans.Authorization, "outcome", ans.Outcome, "result", pas.DecidedBy(by, d.Reviewer))
	return writeFHIR(c, http.StatusOK, ans.Body)
}
