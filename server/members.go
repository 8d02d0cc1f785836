package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/members"
	"github.com/priora/priora/store"
)

// importMembers is POST /admin/members: a roster as a FHIR Bundle
// (application/fhir+json) or NDJSON (application/fhir+ndjson) of Patient,
// Coverage and payer Organization resources. ?all-or-nothing=true writes
// nothing when any entry is bad. The answer is the import report; bad
// entries are listed in it (and, with all-or-nothing, make it a 422
// OperationOutcome).
func (s *Server) importMembers(c echo.Context) error {
	r := c.Request()
	format := members.Sniff
	if ct := r.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err != nil:
			return fhir.Errorf(fhir.Unsupported, "content type %q is not supported; send application/fhir+json or application/fhir+ndjson", ct)
		case mt == "application/fhir+ndjson" || mt == "application/x-ndjson" || mt == "application/ndjson":
			format = members.NDJSON
		case isJSON(mt):
		default:
			return fhir.Errorf(fhir.Unsupported, "content type %q is not supported; send application/fhir+json or application/fhir+ndjson", ct)
		}
	}
	allOrNothing := false
	if v := c.QueryParam("all-or-nothing"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fhir.InvalidAt("value", "all-or-nothing", "all-or-nothing must be true or false")
		}
		allOrNothing = b
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, s.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fhir.Errorf(fhir.TooLarge, "the roster is larger than %d bytes; import large rosters with priora members import, or in parts", s.cfg.MaxBody)
		}
		return fhir.Errorf(fhir.Invalid, "the request body could not be read")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return fhir.Errorf(fhir.Invalid, "the request body is empty; send a Bundle or NDJSON of Patient and Coverage resources")
	}
	src := members.Source{Name: "body", Format: format, Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(body)), nil
	}}
	now := time.Now().UTC()
	rep, err := s.cfg.Roster.Import(r.Context(), []members.Source{src}, members.Options{
		AllOrNothing: allOrNothing, Run: "api:" + caller(c).Client + "@" + now.Format(time.RFC3339), Now: now.Format(time.RFC3339),
	})
	if errors.Is(err, members.ErrStream) {
		return fhir.InvalidAt("structure", "Bundle", "%s", err.Error())
	}
	if errors.Is(err, members.ErrImportRunning) {
		return fhir.Errorf(fhir.Conflict, "another roster import is running (from the API or priora members import); send this one again when it has finished")
	}
	if err != nil {
		return err
	}
	logAttrs(c, "result", fmt.Sprintf("%d created, %d updated, %d unchanged, %d error(s)", rep.Created, rep.Updated, rep.Unchanged, len(rep.Errors)))
	if allOrNothing && len(rep.Errors) > 0 {
		return entryErrors(rep.Errors)
	}
	return c.JSON(http.StatusOK, rep)
}

// entryErrors is a 422 with one issue per bad entry.
func entryErrors(errs []members.EntryError) error {
	e := &fhir.Error{Kind: fhir.Unprocessable, Message: fmt.Sprintf("%d bad entr(y/ies); nothing was imported", len(errs))}
	for _, ee := range errs {
		where := ""
		if ee.Line > 0 {
			where = fmt.Sprintf("line %d: ", ee.Line)
		}
		is := fhir.Issue{Severity: "error", Code: "invalid", Diagnostics: where + ee.Reason}
		if x := ee.Expression(); x != "" {
			is.Expression = x
		}
		e.Issues = append(e.Issues, is)
	}
	return e
}

// member is GET /admin/members/:id: one member with their coverages, by
// "system|value" (URL-escaped) or a bare member id.
func (s *Server) member(c echo.Context) error {
	id, err := url.PathUnescape(c.Param("id"))
	if err != nil || id == "" || len(id) > 512 {
		return fhir.InvalidAt("value", "id", "the member id must be system|value or a member id value, URL-escaped")
	}
	m, err := s.cfg.Roster.Member(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return fhir.Errorf(fhir.NotFound, "no member has id %q", id)
	}
	if errors.Is(err, members.ErrAmbiguous) {
		return fhir.Errorf(fhir.Invalid, "several members have id %q in different systems; ask for system|value", id)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, m)
}
