package desk

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/store"
)

// Report is what the metrics page shows and /desk/api/metrics answers: the
// CMS-0057-F prior-authorization figures and the CRD hook volumes and
// latencies, for requests and calls received in [From, To).
type Report struct {
	Generated time.Time    `json:"generated"`
	From      time.Time    `json:"from"`
	To        time.Time    `json:"to"`
	PA        *pas.Metrics `json:"priorAuthorization"`
	Hooks     HookMetrics  `json:"crdHooks"`
}

// HookMetrics summarise CDS Hooks (CRD) calls: how many, how many failed,
// and percentiles of the whole call's duration (decoding, EHR queries,
// decision and answer), per hook and per month.
type HookMetrics struct {
	Calls int `json:"calls"`
	// Truncated is true when more calls were received than one report
	// reads (maxHookCalls); the figures then cover the oldest calls.
	Truncated bool          `json:"truncated,omitempty"`
	All       HookFigures   `json:"all"`
	ByHook    []HookFigures `json:"byHook"`
	ByMonth   []HookFigures `json:"byMonth"`
}

// HookFigures are the calls of one hook or one month. Percentiles are by
// nearest rank, in milliseconds.
type HookFigures struct {
	Hook   string  `json:"hook,omitempty"`
	Month  string  `json:"month,omitempty"`
	Calls  int     `json:"calls"`
	Failed int     `json:"failed"`
	Cards  int     `json:"cards"`
	P50Ms  float64 `json:"p50Ms"`
	P90Ms  float64 `json:"p90Ms"`
	P95Ms  float64 `json:"p95Ms"`
	P99Ms  float64 `json:"p99Ms"`
	MaxMs  float64 `json:"maxMs"`
	micros []int64
}

// maxHookCalls bounds the hook-call records one report reads.
const maxHookCalls = 200_000

// metricsCache keeps computed reports for a while: computing one scans
// every authorization and every hook call in the period.
type metricsCache struct {
	mu      sync.Mutex
	entries map[string]cachedReport
}

type cachedReport struct {
	at     time.Time
	report *Report
}

// report returns the report for [from, to), computing it at most once per
// MetricsTTL. Concurrent callers wait for one computation.
func (d *Desk) report(ctx context.Context, from, to time.Time) (*Report, error) {
	c := &d.metricsCache
	c.mu.Lock()
	defer c.mu.Unlock()
	key := from.Format(time.RFC3339) + "/" + to.Format(time.RFC3339)
	now := d.cfg.Now()
	if e, ok := c.entries[key]; ok && now.Sub(e.at) < d.cfg.MetricsTTL {
		return e.report, nil
	}
	pa, err := d.cfg.PAS.Metrics(ctx, pas.MetricsQuery{From: from, To: to})
	if err != nil {
		return nil, err
	}
	calls, err := d.cfg.Store.HookCalls(ctx, from, maxHookCalls+1)
	if err != nil {
		return nil, err
	}
	r := &Report{Generated: now.UTC(), From: from, To: to, PA: pa, Hooks: hookMetrics(calls, to)}
	if c.entries == nil || len(c.entries) > 32 {
		c.entries = map[string]cachedReport{}
	}
	c.entries[key] = cachedReport{at: now, report: r}
	return r, nil
}

// hookMetrics summarises the calls received before to.
func hookMetrics(calls []store.HookCall, to time.Time) HookMetrics {
	var m HookMetrics
	if len(calls) > maxHookCalls {
		calls, m.Truncated = calls[:maxHookCalls], true
	}
	byHook, byMonth := map[string]*HookFigures{}, map[string]*HookFigures{}
	for _, c := range calls {
		if !c.Received.Before(to) {
			continue
		}
		month := c.Received.UTC().Format("2006-01")
		if byHook[c.Hook] == nil {
			byHook[c.Hook] = &HookFigures{Hook: c.Hook}
		}
		if byMonth[month] == nil {
			byMonth[month] = &HookFigures{Month: month}
		}
		for _, f := range []*HookFigures{&m.All, byHook[c.Hook], byMonth[month]} {
			f.Calls++
			f.Cards += c.Cards
			if c.Status >= 400 {
				f.Failed++
			}
			f.micros = append(f.micros, c.TotalMicros)
		}
		m.Calls++
	}
	m.All.finish()
	m.ByHook, m.ByMonth = []HookFigures{}, []HookFigures{}
	for _, f := range byHook {
		f.finish()
		m.ByHook = append(m.ByHook, *f)
	}
	for _, f := range byMonth {
		f.finish()
		m.ByMonth = append(m.ByMonth, *f)
	}
	sort.Slice(m.ByHook, func(i, j int) bool { return m.ByHook[i].Hook < m.ByHook[j].Hook })
	sort.Slice(m.ByMonth, func(i, j int) bool { return m.ByMonth[i].Month < m.ByMonth[j].Month })
	return m
}

func (f *HookFigures) finish() {
	if len(f.micros) == 0 {
		return
	}
	slices.Sort(f.micros)
	f.P50Ms, f.P90Ms = percentileMs(f.micros, 50), percentileMs(f.micros, 90)
	f.P95Ms, f.P99Ms = percentileMs(f.micros, 95), percentileMs(f.micros, 99)
	f.MaxMs = float64(f.micros[len(f.micros)-1]) / 1000
	f.micros = nil
}

// percentileMs is the nearest-rank percentile p of sorted microseconds.
func percentileMs(sorted []int64, p float64) float64 {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return float64(sorted[rank-1]) / 1000
}

// period reads the report period from the query: from and to are months
// (YYYY-MM), inclusive; the default is the twelve months up to the current
// one. It returns [first day of from, first day after to).
func period(q map[string][]string, now time.Time) (from, to time.Time, err error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	cur := time.Date(now.UTC().Year(), now.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	to = cur.AddDate(0, 1, 0)
	if s := get("to"); s != "" {
		t, perr := time.Parse("2006-01", s)
		if perr != nil {
			return from, to, fhir.Errorf(fhir.Invalid, "The end month must be written YYYY-MM.")
		}
		to = t.AddDate(0, 1, 0)
	}
	from = to.AddDate(0, -12, 0)
	if s := get("from"); s != "" {
		t, perr := time.Parse("2006-01", s)
		if perr != nil {
			return from, to, fhir.Errorf(fhir.Invalid, "The start month must be written YYYY-MM.")
		}
		from = t
	}
	if !from.Before(to) {
		return from, to, fhir.Errorf(fhir.Invalid, "The start month must not be after the end month.")
	}
	if to.Sub(from) > 5*366*24*time.Hour {
		return from, to, fhir.Errorf(fhir.Invalid, "A report covers at most five years.")
	}
	if from.Year() < 2000 || to.Year() > 9999 {
		return from, to, fhir.Errorf(fhir.Invalid, "A report covers months from 2000-01 to 9998-12.")
	}
	return from, to, nil
}

// metricsPageData is the metrics page.
type metricsPageData struct {
	Title     string
	Session   *session
	Report    *Report
	FromMonth string
	ToMonth   string
	Rows      []figureRow
	Decisions chart
	Times     chart
}

// figureRow is one line of the CMS-0057-F table: standard, expedited, all.
type figureRow struct {
	Label string
	Cells [3]string
}

func (d *Desk) metricsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	from, to, err := period(r.URL.Query(), d.cfg.Now())
	if err != nil {
		return err
	}
	rep, err := d.report(r.Context(), from, to)
	if err != nil {
		return err
	}
	data := &metricsPageData{Title: "Metrics", Session: s, Report: rep,
		FromMonth: from.Format("2006-01"), ToMonth: to.AddDate(0, 0, -1).Format("2006-01"),
		Rows: figureRows(rep.PA)}
	months := everyMonth(rep.PA.ByMonth, from, to)
	data.Decisions, data.Times = decisionsChart(months), timesChart(months)
	d.render(w, r, http.StatusOK, "metrics", data)
	return nil
}

func (d *Desk) metricsJSON(w http.ResponseWriter, r *http.Request, s *session) error {
	from, to, err := period(r.URL.Query(), d.cfg.Now())
	if err != nil {
		return err
	}
	rep, err := d.report(r.Context(), from, to)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return nil
}

// metricsExport downloads the CMS-0057-F public-reporting figures of a
// period as CSV or JSON (the same export as GET /admin/metrics/cms-0057-f);
// admin accounts only.
func (d *Desk) metricsExport(w http.ResponseWriter, r *http.Request, s *session) error {
	if s.Role() != pas.RoleAdmin {
		return fhir.Errorf(fhir.Forbidden, "Only an administrator may export the public-reporting figures.")
	}
	q := r.URL.Query()
	ex, err := d.cfg.PAS.ExportReport(r.Context(), q.Get("period"), q.Get("from"), q.Get("to"), q.Get("_format"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", ex.ContentType)
	w.Header().Set("Content-Disposition", `attachment; filename="`+ex.Filename+`"`)
	_, _ = w.Write(ex.Body)
	return nil
}

func figureRows(m *pas.Metrics) []figureRow {
	cols := [3]*pas.Figures{&m.Standard, &m.Expedited, &m.All}
	row := func(label string, f func(*pas.Figures) string) figureRow {
		r := figureRow{Label: label}
		for i, c := range cols {
			r.Cells[i] = f(c)
		}
		return r
	}
	count := func(n int, rate float64) string { return fmt.Sprintf("%d (%s)", n, percent(rate)) }
	return []figureRow{
		row("Requests received", func(f *pas.Figures) string { return itoa(f.Received) }),
		row("Decided", func(f *pas.Figures) string { return itoa(f.Decided) }),
		row("Approved", func(f *pas.Figures) string { return count(f.Approved, f.ApprovedRate) }),
		row("Partially approved", func(f *pas.Figures) string { return count(f.PartiallyApproved, f.PartiallyApprovedRate) }),
		row("Denied", func(f *pas.Figures) string { return count(f.Denied, f.DeniedRate) }),
		row("Approved after resubmission or appeal", func(f *pas.Figures) string {
			return count(f.ApprovedAfterResubmission, f.ApprovedAfterResubmissionRate)
		}),
		row("Overturned on reconsideration or appeal", func(f *pas.Figures) string { return count(f.Overturned, f.OverturnedRate) }),
		row("Pended now (awaiting decision)", func(f *pas.Figures) string { return count(f.Pended, f.PendedRate) }),
		row("Pended for review at some point", func(f *pas.Figures) string { return count(f.PendedForReview, f.PendedForReviewRate) }),
		row("Cancelled by the provider", func(f *pas.Figures) string { return itoa(f.Cancelled) }),
		row("Decided after the deadline", func(f *pas.Figures) string { return count(f.DecidedLate, f.DecidedLateRate) }),
		row("Average time to decision", func(f *pas.Figures) string { return hours(f.DecisionHoursMean) }),
		row("Median time to decision", func(f *pas.Figures) string { return hours(f.DecisionHoursMedian) }),
	}
}

// percent renders a rate in percent, one decimal.
func percent(rate float64) string { return fmt.Sprintf("%.1f %%", rate*100) }

// hours renders a duration in hours; "—" when there is none.
func hours(h *float64) string {
	if h == nil {
		return "—"
	}
	if *h < 1 {
		return fmt.Sprintf("%.0f min", *h*60)
	}
	if *h >= 48 {
		return fmt.Sprintf("%.1f days", *h/24)
	}
	return fmt.Sprintf("%.1f h", *h)
}

// chart is an SVG chart drawn on the server: no script, a title and a
// description for assistive technology, and the same numbers in a table
// next to it.
type chart struct {
	Width, Height int
	Bars          []bar
	Lines         []line
	Ticks         []tick
	Labels        []tick
	Legend        []legendItem
	Empty         bool
}

type bar struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

type line struct {
	Points string
	Class  string
	Dots   []tick
}

type tick struct {
	X, Y  float64
	Label string
}

type legendItem struct{ Class, Label string }

const (
	chartW, chartH            = 720, 260
	padLeft, padRight         = 56, 16
	padTop, padBottom         = 16, 40
	plotW, plotH      float64 = chartW - padLeft - padRight, chartH - padTop - padBottom
)

// everyMonth lists each month of [from, to), with the breakdowns of the
// months that had requests and empty ones for the others, so that a chart's
// time axis has no gaps. It keeps at most the last 24 months.
func everyMonth(have []pas.Breakdown, from, to time.Time) []pas.Breakdown {
	byMonth := map[string]pas.Breakdown{}
	for _, b := range have {
		byMonth[b.Month] = b
	}
	var out []pas.Breakdown
	for m := from; m.Before(to); m = m.AddDate(0, 1, 0) {
		key := m.Format("2006-01")
		b, ok := byMonth[key]
		if !ok {
			b = pas.Breakdown{Month: key}
		}
		out = append(out, b)
	}
	if len(out) > 24 {
		out = out[len(out)-24:]
	}
	return out
}

// niceTop rounds a chart's top value up to a multiple of 4 (at least 4),
// so that its four grid steps are whole numbers.
func niceTop(v float64) float64 {
	return math.Max(4, math.Ceil(v/4)*4)
}

// decisionsChart stacks each month's requests by outcome.
func decisionsChart(months []pas.Breakdown) chart {
	c := chart{Width: chartW, Height: chartH, Empty: len(months) == 0,
		Legend: []legendItem{{"approved", "Approved"}, {"partial", "Partially approved"}, {"denied", "Denied"}, {"pended", "Pended now"}}}
	maxTotal, seen := 0, false
	for _, m := range months {
		f := m.All
		maxTotal = max(maxTotal, f.Approved+f.PartiallyApproved+f.Denied+f.Pended)
		seen = seen || f.Received > 0
	}
	c.Empty = !seen
	top := niceTop(float64(maxTotal))
	step := plotW / float64(max(len(months), 1))
	for i, m := range months {
		f := m.All
		w := math.Min(step*0.7, 48)
		x := padLeft + float64(i)*step + (step-w)/2
		y := float64(padTop) + plotH
		for _, part := range []struct {
			n     int
			class string
		}{{f.Approved, "approved"}, {f.PartiallyApproved, "partial"}, {f.Denied, "denied"}, {f.Pended, "pended"}} {
			if part.n == 0 {
				continue
			}
			h := plotH * float64(part.n) / top
			y -= h
			c.Bars = append(c.Bars, bar{X: x, Y: y, W: w, H: h, Class: part.class,
				Title: fmt.Sprintf("%s: %d %s", monthLabel(m.Month), part.n, part.class)})
		}
		c.Labels = append(c.Labels, axisLabel(i, len(months), step, m.Month))
	}
	c.Ticks = yTicks(top, func(v float64) string { return fmt.Sprintf("%.0f", v) })
	return c
}

// timesChart draws each month's median time to decision, standard and
// expedited, in hours.
func timesChart(months []pas.Breakdown) chart {
	c := chart{Width: chartW, Height: chartH, Empty: true,
		Legend: []legendItem{{"standard", "Standard (median)"}, {"expedited", "Expedited (median)"}}}
	top := 0.0
	for _, m := range months {
		for _, h := range []*float64{m.Standard.DecisionHoursMedian, m.Expedited.DecisionHoursMedian} {
			if h != nil {
				top, c.Empty = math.Max(top, *h), false
			}
		}
	}
	top = niceTop(top)
	step := plotW / float64(max(len(months), 1))
	for _, series := range []struct {
		class string
		get   func(pas.Breakdown) *float64
	}{
		{"standard", func(b pas.Breakdown) *float64 { return b.Standard.DecisionHoursMedian }},
		{"expedited", func(b pas.Breakdown) *float64 { return b.Expedited.DecisionHoursMedian }},
	} {
		l := line{Class: series.class}
		for i, m := range months {
			h := series.get(m)
			if h == nil {
				continue
			}
			x := padLeft + float64(i)*step + step/2
			y := float64(padTop) + plotH - plotH**h/top
			l.Points += fmt.Sprintf("%.1f,%.1f ", x, y)
			l.Dots = append(l.Dots, tick{X: x, Y: y, Label: fmt.Sprintf("%s %s: %s", monthLabel(m.Month), series.class, hours(h))})
		}
		c.Lines = append(c.Lines, l)
	}
	for i, m := range months {
		c.Labels = append(c.Labels, axisLabel(i, len(months), step, m.Month))
	}
	c.Ticks = yTicks(top, func(v float64) string { return fmt.Sprintf("%.0f h", v) })
	return c
}

// axisLabel labels a month on the time axis; with many months only every
// third is labelled, so that labels do not overlap.
func axisLabel(i, n int, step float64, month string) tick {
	t := tick{X: padLeft + float64(i)*step + step/2, Y: chartH - padBottom + 22}
	if n <= 6 || i%3 == (n-1)%3 {
		t.Label = shortMonth(month)
	}
	return t
}

// shortMonth turns 2026-03 into "Mar 26".
func shortMonth(m string) string {
	t, err := time.Parse("2006-01", m)
	if err != nil {
		return m
	}
	return t.Format("Jan 06")
}

func yTicks(top float64, label func(float64) string) []tick {
	var ts []tick
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		ts = append(ts, tick{X: padLeft - 8, Y: float64(padTop) + plotH - plotH*float64(i)/4, Label: label(v)})
	}
	return ts
}

// monthLabel turns 2026-03 into "Mar 2026".
func monthLabel(m string) string {
	t, err := time.Parse("2006-01", m)
	if err != nil {
		return m
	}
	return t.Format("Jan 2006")
}
