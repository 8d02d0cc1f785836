package server_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/store"
)

// The CMS-0057-F public-reporting figures export as CSV and JSON by
// period, for the payer's administrator scope, counting known decisions
// and leaving test data out.
func TestPublicReportExport(t *testing.T) {
	s := startSecure(t)
	tokA := s.Token(s.keyA, clientA, scopesAll)
	payer := s.payerToken(t)
	admin := s.Token(s.keyAdmin, "admin", auth.ScopeAdmin)
	s.RegisterClient(store.Client{ID: "client-test", Org: "org-t", Scopes: strings.Fields(scopesAll), Test: true}, s.keyA)
	tokTest := s.Token(s.keyA, "client-test", scopesAll)

	decide := func(id, items string) {
		t.Helper()
		r := s.Post("/review/tasks/"+id+"/decision", []byte(`{"reviewer": {"name": "Dr. Rivera", "role": "physician"}, "items": [`+items+`]}`),
			append(testenv.Bearer(payer), "Content-Type", "application/json")...)
		if r.Status != http.StatusOK {
			t.Fatalf("decide: %d %s", r.Status, r.Body)
		}
	}
	deny := func(seq int) string {
		return fmt.Sprintf(`{"sequence": %d, "action": "deny", "reasonCode": "0U", "note": "Not medically necessary."}`, seq)
	}
	approve := func(seq int) string { return fmt.Sprintf(`{"sequence": %d, "action": "approve"}`, seq) }
	decide(submitPendedAs(t, s.Env, tokA, "rep-approved"), approve(1)+","+approve(2)) // approved
	decide(submitPendedAs(t, s.Env, tokA, "rep-denied"), deny(1)+","+deny(2))         // denied
	decide(submitPendedAs(t, s.Env, tokA, "rep-partial"), approve(1)+","+deny(2))     // partially approved
	submitPendedAs(t, s.Env, tokA, "rep-pended")                                      // pended
	decide(submitPendedAs(t, s.Env, tokTest, "rep-test"), approve(1)+","+approve(2))  // test data: not counted

	now := time.Now().UTC()
	year := fmt.Sprint(now.Year())
	quarter := fmt.Sprintf("%d-Q%d", now.Year(), (int(now.Month())-1)/3+1)
	get := func(query, token string) *testenv.Response {
		t.Helper()
		return s.With(t).Get("/admin/metrics/cms-0057-f"+query, testenv.Bearer(token)...)
	}

	t.Run("JSON by year, quarter and dates", func(t *testing.T) {
		for _, q := range []string{"?period=" + year, "?period=" + quarter + "&_format=json",
			"?from=" + now.AddDate(0, 0, -1).Format("2006-01-02") + "&to=" + now.Format("2006-01-02")} {
			r := get(q, admin)
			if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("%s: %d %s %s", q, r.Status, r.Header.Get("Content-Type"), r.Body)
			}
			var rep struct {
				Period string      `json:"period"`
				All    pas.Figures `json:"all"`
			}
			if err := json.Unmarshal(r.Body, &rep); err != nil {
				t.Fatal(err)
			}
			f := rep.All
			got := []int{f.Received, f.Decided, f.Approved, f.PartiallyApproved, f.Denied, f.Pended, f.PendedForReview}
			if want := []int{4, 3, 1, 1, 1, 1, 4}; !cmp.Equal(got, want) {
				t.Errorf("%s: received, decided, approved, partial, denied, pended, pended for review = %v, want %v", q, got, want)
			}
			if !strings.Contains(r.Header.Get("Content-Disposition"), ".json") {
				t.Errorf("%s: Content-Disposition %q", q, r.Header.Get("Content-Disposition"))
			}
		}
	})
	t.Run("CSV", func(t *testing.T) {
		r := get("?period="+quarter+"&_format=csv", admin)
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") ||
			!strings.Contains(r.Header.Get("Content-Disposition"), "priora-cms-0057-f-"+quarter+".csv") {
			t.Fatalf("%d %v %s", r.Status, r.Header, r.Body)
		}
		rows, err := csv.NewReader(bytes.NewReader(r.Body)).ReadAll()
		if err != nil || len(rows) < 4 {
			t.Fatalf("CSV: %v, %d rows\n%s", err, len(rows), r.Body)
		}
		if !cmp.Equal(rows[0], pas.ReportCSVHeader) {
			t.Errorf("header %v", rows[0])
		}
		col := map[string]int{}
		for i, h := range rows[0] {
			col[h] = i
		}
		byKey := map[string][]string{}
		for _, row := range rows[1:] {
			byKey[row[col["scope"]]+"/"+row[col["priority"]]] = row
		}
		all := byKey["all/all"]
		if all == nil {
			t.Fatalf("no all/all row in\n%s", r.Body)
		}
		for k, want := range map[string]string{"period": quarter, "received": "4", "decided": "3", "approved": "1",
			"partially_approved": "1", "denied": "1", "pended": "1", "approved_rate": "0.3333", "denied_rate": "0.3333"} {
			if got := all[col[k]]; got != want {
				t.Errorf("all/all %s = %q, want %q", k, got, want)
			}
		}
		// The kit's request is urgent (an expedited review).
		if std, exp := byKey["all/standard"], byKey["all/expedited"]; std == nil || exp == nil ||
			std[col["received"]] != "0" || std[col["decision_hours_mean"]] != "" || exp[col["received"]] != "4" || exp[col["denied"]] != "1" {
			t.Errorf("standard %v, expedited %v: want the 4 requests expedited, none standard", std, exp)
		}
	})
	t.Run("another period counts nothing", func(t *testing.T) {
		r := get("?period="+fmt.Sprint(now.Year()-1), admin)
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"received": 0`) {
			t.Errorf("%d %s", r.Status, r.Body)
		}
	})
	t.Run("bad periods are 400 OperationOutcomes", func(t *testing.T) {
		for q, at := range map[string]string{
			"":                                 "from",
			"?period=2026-Q5":                  "period",
			"?period=9999":                     "to",
			"?from=9999-01&to=9999-12-31":      "to",
			"?period=26":                       "period",
			"?period=2026-13":                  "period",
			"?period=2026&from=2026-01":        "period",
			"?from=2026-01-01":                 "to",
			"?from=2026-03-01&to=2026-02-01":   "to",
			"?from=2026-02-30&to=2026-03-01":   "from",
			"?from=2010-01&to=2026-01":         "from",
			"?period=" + year + "&_format=xml": "_format",
			"?period=" + year + "&format=csv":  "format",
		} {
			r := get(q, admin)
			if r.Status != http.StatusBadRequest {
				t.Errorf("%q: %d %s, want 400", q, r.Status, r.Body)
				continue
			}
			checkOutcome(t, r.Body, at, "")
		}
	})
	t.Run("only the payer's administrator scope", func(t *testing.T) {
		for name, tok := range map[string]string{"provider": tokA, "payer review scope": payer} {
			if r := get("?period="+year, tok); r.Status != http.StatusForbidden {
				t.Errorf("%s: %d %s, want 403", name, r.Status, r.Body)
			}
		}
	})
}
