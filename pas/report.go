package pas

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/priora/priora/fhir"
)

// ReportPeriod is the window of receipt a public report covers: [From, To).
type ReportPeriod struct {
	From, To time.Time
	// Label names the period as asked ("2026-Q4", "2026", or "from..to").
	Label string
}

var (
	yearRe    = regexp.MustCompile(`^[0-9]{4}$`)
	quarterRe = regexp.MustCompile(`^([0-9]{4})-Q([1-4])$`)
	monthRe   = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}$`)
)

// ParseReportPeriod reads the period of a public-reporting export: either
// period (a year "2026", a quarter "2026-Q4" or a month "2026-11"), or
// from and to (dates YYYY-MM-DD or months YYYY-MM, both inclusive). Times
// are UTC. A period ends after it starts and spans at most five years.
// Errors are 400 OperationOutcomes naming the parameter.
func ParseReportPeriod(period, from, to string) (ReportPeriod, error) {
	period, from, to = strings.TrimSpace(period), strings.TrimSpace(from), strings.TrimSpace(to)
	var p ReportPeriod
	switch {
	case period != "" && (from != "" || to != ""):
		return p, fhir.InvalidAt("value", "period", "give period, or from and to, not both")
	case period != "":
		p.Label = period
		switch {
		case yearRe.MatchString(period):
			y, _ := strconv.Atoi(period)
			p.From = time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
			p.To = p.From.AddDate(1, 0, 0)
		case quarterRe.MatchString(period):
			m := quarterRe.FindStringSubmatch(period)
			y, _ := strconv.Atoi(m[1])
			q, _ := strconv.Atoi(m[2])
			p.From = time.Date(y, time.Month(3*(q-1)+1), 1, 0, 0, 0, 0, time.UTC)
			p.To = p.From.AddDate(0, 3, 0)
		case monthRe.MatchString(period):
			t, err := time.Parse("2006-01", period)
			if err != nil {
				return p, fhir.InvalidAt("value", "period", "period %q is not a month (YYYY-MM)", period)
			}
			p.From, p.To = t, t.AddDate(0, 1, 0)
		default:
			return p, fhir.InvalidAt("value", "period", "period %q must be a year (2026), a quarter (2026-Q4) or a month (2026-11)", period)
		}
	case from == "" || to == "":
		return p, fhir.InvalidAt("required", map[bool]string{true: "from", false: "to"}[from == ""],
			"give period (2026, 2026-Q4 or 2026-11), or from and to (YYYY-MM-DD or YYYY-MM, inclusive)")
	default:
		var err error
		if p.From, _, err = reportDay(from, "from"); err != nil {
			return p, err
		}
		var last time.Time
		if _, last, err = reportDay(to, "to"); err != nil {
			return p, err
		}
		p.To = last
		p.Label = from + ".." + to
	}
	if !p.From.Before(p.To) {
		return p, fhir.InvalidAt("value", "to", "the period must end after it starts")
	}
	if p.From.Year() < 2000 || p.To.Sub(p.From) > 5*366*24*time.Hour {
		return p, fhir.InvalidAt("value", "from", "a report covers at most five years, from 2000 on")
	}
	if p.To.Year() > 9999 {
		return p, fhir.InvalidAt("value", "to", "a report ends in 9998 at the latest")
	}
	return p, nil
}

// reportDay reads a date or a month: its first instant and the first
// instant after it.
func reportDay(v, param string) (start, end time.Time, err error) {
	if t, e := time.Parse("2006-01-02", v); e == nil {
		return t, t.AddDate(0, 0, 1), nil
	}
	if t, e := time.Parse("2006-01", v); e == nil {
		return t, t.AddDate(0, 1, 0), nil
	}
	return start, end, fhir.InvalidAt("value", param, "%s %q must be a date (YYYY-MM-DD) or a month (YYYY-MM)", param, v)
}

// ReportCSVHeader are the columns of the CSV export, one row per scope
// (every request, then each service category) and priority.
var ReportCSVHeader = []string{
	"period", "period_start", "period_end", "scope", "priority",
	"received", "decided", "approved", "partially_approved", "denied", "pended", "cancelled",
	"approved_after_resubmission_or_appeal", "pended_for_review", "decided_late",
	"approved_rate", "partially_approved_rate", "denied_rate", "approved_after_resubmission_or_appeal_rate",
	"decided_late_rate", "decision_hours_mean", "decision_hours_median",
}

// ReportCSV renders the public-reporting figures of a period as CSV
// (RFC 4180): rates as fractions with four decimals, hours with two, an
// empty cell where no request was decided.
func ReportCSV(p ReportPeriod, m *Metrics) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write(ReportCSVHeader)
	rows := func(scope string, std, exp, all *Figures) {
		for _, r := range []struct {
			priority string
			f        *Figures
		}{{"standard", std}, {"expedited", exp}, {"all", all}} {
			f := r.f
			_ = w.Write([]string{
				p.Label, p.From.Format("2006-01-02"), p.To.AddDate(0, 0, -1).Format("2006-01-02"), scope, r.priority,
				itoa(f.Received), itoa(f.Decided), itoa(f.Approved), itoa(f.PartiallyApproved), itoa(f.Denied),
				itoa(f.Pended), itoa(f.Cancelled), itoa(f.ApprovedAfterResubmission), itoa(f.PendedForReview), itoa(f.DecidedLate),
				fixed(f.ApprovedRate, 4), fixed(f.PartiallyApprovedRate, 4), fixed(f.DeniedRate, 4),
				fixed(f.ApprovedAfterResubmissionRate, 4), fixed(f.DecidedLateRate, 4),
				optFixed(f.DecisionHoursMean), optFixed(f.DecisionHoursMedian),
			})
		}
	}
	rows("all", &m.Standard, &m.Expedited, &m.All)
	for i := range m.ByCategory {
		c := &m.ByCategory[i]
		rows("category:"+c.Category, &c.Standard, &c.Expedited, &c.All)
	}
	w.Flush()
	return b.Bytes()
}

func itoa(n int) string { return strconv.Itoa(n) }

func fixed(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }

func optFixed(v *float64) string {
	if v == nil {
		return ""
	}
	return fixed(*v, 2)
}

// Export is a rendered public-reporting export.
type Export struct {
	Body        []byte
	ContentType string
	// Filename is what to save it as.
	Filename string
}

// ExportReport computes the CMS-0057-F public-reporting figures of the
// requests received in a period (test data left out) and renders them as
// format: "csv" or "json" ("" too). The period is read by
// ParseReportPeriod.
func (s *Service) ExportReport(ctx context.Context, period, from, to, format string) (*Export, error) {
	if format != "" && format != "csv" && format != "json" {
		return nil, fhir.InvalidAt("value", "_format", "_format must be csv or json")
	}
	p, err := ParseReportPeriod(period, from, to)
	if err != nil {
		return nil, err
	}
	m, err := s.Metrics(ctx, MetricsQuery{From: p.From, To: p.To})
	if err != nil {
		return nil, err
	}
	name := "priora-cms-0057-f-" + strings.ReplaceAll(p.Label, "..", "_to_")
	if format == "csv" {
		return &Export{Body: ReportCSV(p, m), ContentType: "text/csv; charset=utf-8", Filename: name + ".csv"}, nil
	}
	b, err := json.MarshalIndent(struct {
		Period string `json:"period"`
		*Metrics
	}{p.Label, m}, "", "  ")
	if err != nil {
		return nil, err
	}
	return &Export{Body: b, ContentType: "application/json", Filename: name + ".json"}, nil
}
