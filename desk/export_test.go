package desk_test

import (
	"encoding/csv"
	"net/http"
	"strings"
	"testing"

	"github.com/priora/priora/desk"
)

// An administrator downloads the public-reporting figures from the
// metrics page (CSV and JSON of the period shown); other roles see no
// button and are refused.
func TestMetricsExportButton(t *testing.T) {
	e := start(t)
	addReviewer(t, e, desk.Account{Username: "admin1", Password: reviewerPassword, Name: "Admin One", Role: "admin"})
	submit(t, e, "export-1")

	admin := newBrowser(t, e)
	admin.mustSignInAs("admin1")
	p := admin.get("/desk/metrics")
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `id="export-csv"`) || !strings.Contains(p.Body, "Download JSON") {
		t.Fatalf("admin's metrics page: %d, no export buttons\n%.3000s", p.Status, p.Body)
	}
	i := strings.Index(p.Body, `id="export-csv" href="`)
	href := p.Body[i+len(`id="export-csv" href="`):]
	href = strings.ReplaceAll(href[:strings.Index(href, `"`)], "&amp;", "&")
	csvPage := admin.get(href)
	if csvPage.Status != http.StatusOK || !strings.HasPrefix(csvPage.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(csvPage.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("%s: %d %v\n%s", href, csvPage.Status, csvPage.Header, csvPage.Body)
	}
	rows, err := csv.NewReader(strings.NewReader(csvPage.Body)).ReadAll()
	if err != nil || len(rows) < 4 || rows[3][3] != "all" || rows[3][4] != "all" || rows[3][5] != "1" {
		t.Errorf("CSV: %v\n%s", err, csvPage.Body)
	}
	for _, q := range []string{"/desk/metrics/export?period=2026-Q9", "/desk/metrics/export?period=9999-12", "/desk/api/metrics?from=9999-01&to=9999-12"} {
		if r := admin.get(q); r.Status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, r.Status)
		}
	}

	nurse := newBrowser(t, e)
	nurse.mustSignIn()
	if p := nurse.get("/desk/metrics"); strings.Contains(p.Body, "export-csv") {
		t.Errorf("a nurse sees the export button")
	}
	if r := nurse.get(href); r.Status != http.StatusForbidden {
		t.Errorf("a nurse's export: %d, want 403", r.Status)
	}
}
