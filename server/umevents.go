package server

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/umevents"
)

// umEvents is the UM event feed: GET /review/events?after=SEQ|ID&_count=N,
// the events after the one named, in order, for the payer's UM system.
func (s *Server) umEvents(c echo.Context) error {
	if _, _, err := reviewer(c); err != nil {
		return err
	}
	q := c.QueryParams()
	for k := range q {
		if k != "after" && k != "_count" {
			return fhir.InvalidAt("not-supported", k, "unknown parameter %q: the feed takes after and _count", k)
		}
	}
	ctx := c.Request().Context()
	after, err := s.cfg.UMEvents.ParseAfter(ctx, q.Get("after"))
	if err != nil {
		return err
	}
	count := 100
	if v := q.Get("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > umevents.MaxCount {
			return fhir.InvalidAt("value", "_count", "_count must be a number from 1 to %d", umevents.MaxCount)
		}
		count = n
	}
	page, err := s.cfg.UMEvents.Feed(ctx, after, count)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}
