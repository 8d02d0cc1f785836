package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

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
	if err := queueFilters(q, &f); err != nil {
		return err
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

// queueFilters reads the work queue's search and filters from the query.
func queueFilters(q url.Values, f *store.ReviewFilter) error {
	f.MemberID = strings.TrimSpace(q.Get("member"))
	f.Patient = strings.TrimSpace(q.Get("patient"))
	f.NPI = strings.TrimSpace(q.Get("npi"))
	f.Code = strings.TrimSpace(q.Get("code"))
	for _, p := range []struct{ name, v string }{{"member", f.MemberID}, {"patient", f.Patient}, {"npi", f.NPI}, {"code", f.Code}} {
		if len(p.v) > 100 {
			return fhir.InvalidAt("value", p.name, "%s is longer than 100 characters", p.name)
		}
	}
	if f.NPI != "" && !fhir.IsNPI(f.NPI) {
		return fhir.InvalidAt("value", "npi", "npi must be a 10-digit NPI")
	}
	if st := q.Get("state"); st != "" {
		if !slices.Contains(pas.States, st) {
			return fhir.InvalidAt("value", "state", "state must be one of %s", strings.Join(pas.States, ", "))
		}
		f.State = st
	}
	switch q.Get("priority") {
	case "":
	case "expedited":
		f.Expedited = ptrTo(true)
	case "standard":
		f.Expedited = ptrTo(false)
	default:
		return fhir.InvalidAt("value", "priority", "priority must be expedited or standard")
	}
	switch a := strings.TrimSpace(q.Get("assignee")); {
	case a == "" || a == "unassigned" || a == "assigned":
		f.Assignee = a
	case fhir.IsNPI(a):
		f.Assignee = pas.AssigneeKey(pas.Reviewer{NPI: a})
	case strings.HasPrefix(a, "npi:") || strings.HasPrefix(a, "name:"):
		if len(a) > 140 {
			return fhir.InvalidAt("value", "assignee", "assignee is longer than 140 characters")
		}
		f.Assignee = a
	default:
		return fhir.InvalidAt("value", "assignee", "assignee must be unassigned, assigned, a reviewer's NPI, or an assignee key (npi:… or name:…)")
	}
	switch q.Get("overdue") {
	case "":
	case "true":
		f.Overdue = true
	default:
		return fhir.InvalidAt("value", "overdue", "overdue must be true")
	}
	switch e := q.Get("eligibility"); e {
	case "", "eligible", "not-eligible", "unchecked":
		f.Eligibility = e
	default:
		return fhir.InvalidAt("value", "eligibility", "eligibility must be eligible, not-eligible or unchecked")
	}
	return nil
}

func ptrTo[T any](v T) *T { return &v }

// reviewPost reads a review API POST: the task id of the path, the
// principal and tenant, and the JSON body into v (unknown members refused).
func (s *Server) reviewPost(c echo.Context, v any) (id string, by pas.Principal, tenant string, err error) {
	id = c.Param("id")
	if !validID(id) {
		return "", by, "", fhir.Errorf(fhir.NotFound, "no such task")
	}
	if by, tenant, err = reviewer(c); err != nil {
		return "", by, "", err
	}
	body, err := s.readFHIR(c)
	if err != nil {
		return "", by, "", err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return "", by, "", fhir.InvalidAt("structure", "", "the body is not valid JSON of the documented shape: %s", fhir.JSONProblem(err))
	}
	return id, by, tenant, nil
}

// reviewAssignment claims, releases or assigns a task (what says which).
func (s *Server) reviewAssignment(what string) echo.HandlerFunc {
	return func(c echo.Context) error {
		var a pas.Assignment
		id, _, tenant, err := s.reviewPost(c, &a)
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		var t *pas.TaskSummary
		switch what {
		case "claim":
			t, err = s.cfg.PAS.Claim(ctx, tenant, id, a.Reviewer)
		case "release":
			t, err = s.cfg.PAS.Release(ctx, tenant, id, a.Reviewer)
		default:
			if a.Assignee == nil {
				return fhir.InvalidAt("required", "assignee", "an assignment needs the assignee")
			}
			t, err = s.cfg.PAS.Assign(ctx, tenant, id, a.Reviewer, *a.Assignee)
		}
		if err != nil {
			return err
		}
		logAttrs(c, "authorization", id, "result", what)
		return c.JSON(http.StatusOK, t)
	}
}

// reviewReopen reopens decided items for reconsideration or records an
// appeal (pas.Reopen).
func (s *Server) reviewReopen(c echo.Context) error {
	var rq pas.ReopenRequest
	id, by, tenant, err := s.reviewPost(c, &rq)
	if err != nil {
		return err
	}
	t, err := s.cfg.PAS.Reopen(c.Request().Context(), by, tenant, id, rq)
	if err != nil {
		return err
	}
	logAttrs(c, "authorization", id, "result", rq.Kind)
	return c.JSON(http.StatusOK, t)
}

// reviewAttach attaches documents that arrived outside PAS (pas.Attach).
func (s *Server) reviewAttach(c echo.Context) error {
	var rq pas.AttachRequest
	id, by, tenant, err := s.reviewPost(c, &rq)
	if err != nil {
		return err
	}
	t, err := s.cfg.PAS.Attach(c.Request().Context(), by, tenant, id, rq)
	if err != nil {
		return err
	}
	logAttrs(c, "authorization", id, "result", "attached")
	return c.JSON(http.StatusOK, t)
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
	var d pas.ReviewDecision
	id, by, tenant, err := s.reviewPost(c, &d)
	if err != nil {
		return err
	}
	ans, err := s.cfg.PAS.Decide(c.Request().Context(), by, tenant, id, d)
	if err != nil {
		return err
	}
	logAttrs(c, "authorization", ans.Authorization, "outcome", ans.Outcome, "result", pas.DecidedBy(by, d.Reviewer))
	return writeFHIR(c, http.StatusOK, ans.Body)
}
