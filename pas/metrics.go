package pas

import (
	"context"
	"sort"
	"time"

	"github.com/priora/priora/store"
)

// MetricsQuery selects the requests that metrics cover, by when they were
// received: [From, To), a zero bound being open.
type MetricsQuery struct {
	From, To time.Time
}

// Metrics are the prior-authorization figures CMS-0057-F (45 CFR
// 156.223(a)(2), 42 CFR 422.122(c) and kin) asks payers to publish,
// for standard and expedited requests, overall and by month and service
// category. A request is one authorization chain: its first $submit and
// every update to it. See Figures for what each count means.
type Metrics struct {
	Generated time.Time `json:"generated"`
	From      time.Time `json:"from,omitzero"`
	To        time.Time `json:"to,omitzero"`
	Standard  Figures   `json:"standard"`
	Expedited Figures   `json:"expedited"`
	All       Figures   `json:"all"`
	// ByMonth is keyed by the UTC month of receipt, oldest first.
	ByMonth []Breakdown `json:"byMonth"`
	// ByCategory is keyed by the service category of the coverage rule
	// that decided the request's first item ("unspecified" when none).
	ByCategory         []Breakdown `json:"byCategory"`
	ByMonthAndCategory []Breakdown `json:"byMonthAndCategory"`
}

// Breakdown is one group of requests, split by priority.
type Breakdown struct {
	// Month is YYYY-MM; Category a rule category. Either may be empty when
	// the breakdown is not by it.
	Month     string  `json:"month,omitempty"`
	Category  string  `json:"category,omitempty"`
	Standard  Figures `json:"standard"`
	Expedited Figures `json:"expedited"`
	All       Figures `json:"all"`
}

// Figures count one group of requests. The outcome of a request is that of
// its live (not cancelled) items once none awaits a decision:
//
//   - Approved: every live item approved as requested (X12 A1).
//   - Denied: every live item denied (A3).
//   - PartiallyApproved: some live item approved with changes (A6: fewer
//     units or other dates), or some approved and some denied.
//   - Pended: some item still awaits a decision (A4) now.
//   - Cancelled: the provider withdrew every item.
//
// Decided is Approved + PartiallyApproved + Denied, the denominator of the
// outcome rates; PendedRate and PendedForReviewRate divide by Received.
// ApprovedAfterResubmission counts decided requests with an item that is
// approved now after an earlier denial, reversed by a PAS update (a
// resubmission); PAS has no separate appeal transaction, so appeals that
// reach Priora arrive this way too. PendedForReview counts requests not
// decided at once: some item was pended at receipt or later, for a person
// or a delayed rule. Decision times run from receipt of the first $submit
// to the first determination of every live item (the initial decision, not
// later changes); DecidedLate counts decisions made after the CMS-0057-F
// deadline (72 hours expedited, 7 calendar days standard).
type Figures struct {
	Received                  int `json:"received"`
	Decided                   int `json:"decided"`
	Approved                  int `json:"approved"`
	PartiallyApproved         int `json:"partiallyApproved"`
	Denied                    int `json:"denied"`
	Pended                    int `json:"pended"`
	Cancelled                 int `json:"cancelled"`
	ApprovedAfterResubmission int `json:"approvedAfterResubmission"`
	PendedForReview           int `json:"pendedForReview"`
	DecidedLate               int `json:"decidedLate"`
	// Overturned counts decided requests with an item whose decision was
	// reversed after a reconsideration or an appeal (a reopened item
	// decided otherwise than before).
	Overturned int `json:"overturned"`

	// Rates are fractions from 0 to 1; zero when the denominator is.
	ApprovedRate                  float64 `json:"approvedRate"`
	PartiallyApprovedRate         float64 `json:"partiallyApprovedRate"`
	DeniedRate                    float64 `json:"deniedRate"`
	ApprovedAfterResubmissionRate float64 `json:"approvedAfterResubmissionRate"`
	OverturnedRate                float64 `json:"overturnedRate"`
	PendedRate                    float64 `json:"pendedRate"`
	PendedForReviewRate           float64 `json:"pendedForReviewRate"`
	DecidedLateRate               float64 `json:"decidedLateRate"`

	// DecisionHoursMean and DecisionHoursMedian are over decided requests;
	// absent when none was decided.
	DecisionHoursMean   *float64 `json:"decisionHoursMean,omitempty"`
	DecisionHoursMedian *float64 `json:"decisionHoursMedian,omitempty"`

	hours []float64
}

// Metrics computes the figures over every request received in q's window.
// It reads every chain (a full collection scan: about a millisecond per
// thousand chains on the embedded store, plus decoding), so callers cache
// the result rather than compute it per page view.
func (s *Service) Metrics(ctx context.Context, q MetricsQuery) (*Metrics, error) {
	var b MetricsBuilder
	if err := s.cfg.Store.EachAuthorization(ctx, q.From, q.To, func(a *store.Authorization) error {
		b.Add(a)
		return nil
	}); err != nil {
		return nil, err
	}
	m := b.Metrics()
	m.Generated, m.From, m.To = s.cfg.Now().UTC(), q.From, q.To
	return m, nil
}

// MetricsBuilder accumulates requests into Metrics. The zero value is ready.
type MetricsBuilder struct {
	all, standard, expedited Figures
	byMonth, byCategory      map[string]*Breakdown
	byBoth                   map[[2]string]*Breakdown
}

// Add counts one chain; test data is not counted.
func (b *MetricsBuilder) Add(a *store.Authorization) {
	if a.Test {
		return
	}
	if b.byMonth == nil {
		b.byMonth, b.byCategory, b.byBoth = map[string]*Breakdown{}, map[string]*Breakdown{}, map[[2]string]*Breakdown{}
	}
	o := classify(a)
	month := a.Created.UTC().Format("2006-01")
	cat := a.Summary.Category
	if cat == "" {
		cat = "unspecified"
	}
	bm := b.byMonth[month]
	if bm == nil {
		bm = &Breakdown{Month: month}
		b.byMonth[month] = bm
	}
	bc := b.byCategory[cat]
	if bc == nil {
		bc = &Breakdown{Category: cat}
		b.byCategory[cat] = bc
	}
	bb := b.byBoth[[2]string{month, cat}]
	if bb == nil {
		bb = &Breakdown{Month: month, Category: cat}
		b.byBoth[[2]string{month, cat}] = bb
	}
	b.all.add(o)
	bm.All.add(o)
	bc.All.add(o)
	bb.All.add(o)
	if a.Expedited {
		b.expedited.add(o)
		bm.Expedited.add(o)
		bc.Expedited.add(o)
		bb.Expedited.add(o)
	} else {
		b.standard.add(o)
		bm.Standard.add(o)
		bc.Standard.add(o)
		bb.Standard.add(o)
	}
}

// Metrics returns what was added, with rates and decision times worked out.
// Generated, From and To are left for the caller.
func (b *MetricsBuilder) Metrics() *Metrics {
	m := &Metrics{All: b.all, Standard: b.standard, Expedited: b.expedited,
		ByMonth: []Breakdown{}, ByCategory: []Breakdown{}, ByMonthAndCategory: []Breakdown{}}
	m.All.finish()
	m.Standard.finish()
	m.Expedited.finish()
	for _, v := range b.byMonth {
		m.ByMonth = append(m.ByMonth, v.finished())
	}
	for _, v := range b.byCategory {
		m.ByCategory = append(m.ByCategory, v.finished())
	}
	for _, v := range b.byBoth {
		m.ByMonthAndCategory = append(m.ByMonthAndCategory, v.finished())
	}
	for _, l := range [][]Breakdown{m.ByMonth, m.ByCategory, m.ByMonthAndCategory} {
		sort.Slice(l, func(i, j int) bool {
			if l[i].Month != l[j].Month {
				return l[i].Month < l[j].Month
			}
			return l[i].Category < l[j].Category
		})
	}
	return m
}

func (d *Breakdown) finished() Breakdown {
	out := *d
	out.All.finish()
	out.Standard.finish()
	out.Expedited.finish()
	return out
}

// outcome is what one chain contributes to Figures.
type outcome struct {
	result          string // approved, partial, denied, pended, cancelled
	afterResubmit   bool
	overturned      bool
	pendedForReview bool
	// elapsed runs from receipt to the first determination of every live
	// item; late is true when that passed the chain's deadline.
	elapsed time.Duration
	late    bool
}

// classify works out a chain's outcome from its items' decisions.
func classify(a *store.Authorization) outcome {
	var o outcome
	var decided time.Time
	approved, denied, modified := 0, 0, 0
	for _, it := range a.Items {
		for _, d := range append(it.History, it.Decision) {
			if d.Action == "pend" {
				o.pendedForReview = true
			}
		}
		for _, d := range append(it.History, it.Decision) {
			if d.Overturned != "" {
				o.overturned = true
			}
		}
		switch it.Decision.Action {
		case "cancel":
			continue
		case "approve", "modify":
			approved++
			if it.Decision.Action == "modify" {
				modified++
			}
			for _, h := range it.History {
				if h.Action == "deny" {
					o.afterResubmit = true
				}
			}
		case "deny":
			denied++
		}
		if t := firstDetermination(it); t.After(decided) {
			decided = t
		}
	}
	switch {
	case a.Status == "pended":
		o.result = "pended"
	case a.Status == "cancelled" || approved+denied == 0:
		o.result = "cancelled"
	case denied == 0 && modified == 0:
		o.result = "approved"
	case approved == 0:
		o.result = "denied"
	default:
		o.result = "partial"
	}
	if o.result == "pended" || o.result == "cancelled" {
		o.afterResubmit, o.overturned = false, false
		return o
	}
	if decided.After(a.Created) {
		o.elapsed = decided.Sub(a.Created)
	}
	o.late = !a.DueAt.IsZero() && decided.After(a.DueAt)
	return o
}

// firstDetermination is when an item was first approved, modified or
// denied (zero if never).
func firstDetermination(it store.Item) time.Time {
	for _, h := range it.History {
		if h.Action == "approve" || h.Action == "modify" || h.Action == "deny" {
			return h.At
		}
	}
	if d := it.Decision; d.Action == "approve" || d.Action == "modify" || d.Action == "deny" {
		return d.At
	}
	return time.Time{}
}

func (f *Figures) add(o outcome) {
	f.Received++
	switch o.result {
	case "approved":
		f.Approved++
	case "partial":
		f.PartiallyApproved++
	case "denied":
		f.Denied++
	case "pended":
		f.Pended++
	case "cancelled":
		f.Cancelled++
	}
	switch o.result {
	case "approved", "partial", "denied":
		f.Decided++
		f.hours = append(f.hours, o.elapsed.Hours())
		if o.late {
			f.DecidedLate++
		}
	}
	if o.afterResubmit {
		f.ApprovedAfterResubmission++
	}
	if o.overturned {
		f.Overturned++
	}
	if o.pendedForReview {
		f.PendedForReview++
	}
}

func (f *Figures) finish() {
	rate := func(n, of int) float64 {
		if of == 0 {
			return 0
		}
		return float64(n) / float64(of)
	}
	f.ApprovedRate = rate(f.Approved, f.Decided)
	f.PartiallyApprovedRate = rate(f.PartiallyApproved, f.Decided)
	f.DeniedRate = rate(f.Denied, f.Decided)
	f.ApprovedAfterResubmissionRate = rate(f.ApprovedAfterResubmission, f.Decided)
	f.DecidedLateRate = rate(f.DecidedLate, f.Decided)
	f.OverturnedRate = rate(f.Overturned, f.Decided)
	f.PendedRate = rate(f.Pended, f.Received)
	f.PendedForReviewRate = rate(f.PendedForReview, f.Received)
	if len(f.hours) == 0 {
		return
	}
	h := append([]float64(nil), f.hours...)
	sort.Float64s(h)
	sum := 0.0
	for _, v := range h {
		sum += v
	}
	mean := sum / float64(len(h))
	median := h[len(h)/2]
	if len(h)%2 == 0 {
		median = (h[len(h)/2-1] + h[len(h)/2]) / 2
	}
	f.DecisionHoursMean, f.DecisionHoursMedian = &mean, &median
	f.hours = nil
}
