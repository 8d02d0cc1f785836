package server

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/fhir"
)

// publicReport is GET /admin/metrics/cms-0057-f?period=2026-Q4 (or
// from=&to=) &_format=csv|json: the CMS-0057-F public-reporting figures
// of the requests received in the period, test data left out.
func (s *Server) publicReport(c echo.Context) error {
	q := c.QueryParams()
	for k := range q {
		switch k {
		case "period", "from", "to", "_format":
		default:
			return fhir.InvalidAt("not-supported", k, "unknown parameter %q: the export takes period, or from and to, and _format", k)
		}
	}
	ex, err := s.cfg.PAS.ExportReport(c.Request().Context(), q.Get("period"), q.Get("from"), q.Get("to"), q.Get("_format"))
	if err != nil {
		return err
	}
	c.Response().Header().Set("Content-Disposition", `attachment; filename="`+ex.Filename+`"`)
	return c.Blob(http.StatusOK, ex.ContentType, ex.Body)
}
