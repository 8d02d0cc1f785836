package pas_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/priora/priora/pas"
	"github.com/priora/priora/store"
)

var t0 = time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC)

func dec(action string, after time.Duration) store.Decision {
	return store.Decision{Action: action, At: t0.Add(after)}
}

// item makes an item whose decisions happened in order: the last is current.
func item(ds ...store.Decision) store.Item {
	return store.Item{Decision: ds[len(ds)-1], History: ds[:len(ds)-1]}
}

func chain(status string, expedited bool, items ...store.Item) *store.Authorization {
	due := t0.Add(7 * 24 * time.Hour)
	if expedited {
		due = t0.Add(72 * time.Hour)
	}
	return &store.Authorization{Status: status, Expedited: expedited, Created: t0, DueAt: due, Items: items,
		Summary: store.Summary{Category: "imaging"}}
}

func TestMetricsFigures(t *testing.T) {
	h := time.Hour
	tests := []struct {
		name  string
		chain *store.Authorization
		want  pas.Figures
	}{
		{"approved at once", chain("complete", false, item(dec("approve", 0))),
			pas.Figures{Received: 1, Decided: 1, Approved: 1, ApprovedRate: 1}},
		{"modified (A6) counts as partially approved", chain("complete", false, item(dec("modify", 0)), item(dec("approve", 0))),
			pas.Figures{Received: 1, Decided: 1, PartiallyApproved: 1, PartiallyApprovedRate: 1}},
		{"denied after review", chain("complete", false, item(dec("pend", 0), dec("deny", 30*h))),
			pas.Figures{Received: 1, Decided: 1, Denied: 1, DeniedRate: 1, PendedForReview: 1, PendedForReviewRate: 1}},
		{"partially approved", chain("complete", true, item(dec("pend", 0), dec("approve", 2*h)), item(dec("pend", 0), dec("deny", 4*h))),
			pas.Figures{Received: 1, Decided: 1, PartiallyApproved: 1, PartiallyApprovedRate: 1, PendedForReview: 1, PendedForReviewRate: 1}},
		{"still pended", chain("pended", false, item(dec("pend", 0)), item(dec("approve", 0))),
			pas.Figures{Received: 1, Pended: 1, PendedRate: 1, PendedForReview: 1, PendedForReviewRate: 1}},
		{"request for information is still pended", chain("pended", false, item(dec("pend", 0), dec("pend", h))),
			pas.Figures{Received: 1, Pended: 1, PendedRate: 1, PendedForReview: 1, PendedForReviewRate: 1}},
		{"cancelled", chain("cancelled", false, item(dec("pend", 0), dec("cancel", h))),
			pas.Figures{Received: 1, Cancelled: 1, PendedForReview: 1, PendedForReviewRate: 1}},
		{"cancelled items are left out", chain("complete", false, item(dec("approve", 0)), item(dec("pend", 0), dec("cancel", h))),
			pas.Figures{Received: 1, Decided: 1, Approved: 1, ApprovedRate: 1, PendedForReview: 1, PendedForReviewRate: 1}},
		{"approved after resubmission", chain("complete", false, item(dec("deny", 0), dec("approve", 50*h))),
			pas.Figures{Received: 1, Decided: 1, Approved: 1, ApprovedRate: 1, ApprovedAfterResubmission: 1, ApprovedAfterResubmissionRate: 1}},
		{"late expedited decision", chain("complete", true, item(dec("pend", 0), dec("approve", 80*h))),
			pas.Figures{Received: 1, Decided: 1, Approved: 1, ApprovedRate: 1, PendedForReview: 1, PendedForReviewRate: 1, DecidedLate: 1, DecidedLateRate: 1}},
	}
	ignore := cmpopts.IgnoreFields(pas.Figures{}, "DecisionHoursMean", "DecisionHoursMedian")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b pas.MetricsBuilder
			b.Add(tt.chain)
			m := b.Metrics()
			if diff := cmp.Diff(tt.want, m.All, ignore, cmpopts.IgnoreUnexported(pas.Figures{})); diff != "" {
				t.Errorf("figures (-want +got):\n%s", diff)
			}
			prio := m.Standard
			if tt.chain.Expedited {
				prio = m.Expedited
			}
			if diff := cmp.Diff(m.All, prio, cmpopts.IgnoreUnexported(pas.Figures{})); diff != "" {
				t.Errorf("the priority's figures differ from all (-all +priority):\n%s", diff)
			}
		})
	}
}

func TestMetricsDecisionTimesAndBreakdowns(t *testing.T) {
	h := time.Hour
	var b pas.MetricsBuilder
	// Time to decision is to the first determination of every item: the
	// later reversal of item 1 does not count.
	b.Add(chain("complete", false, item(dec("pend", 0), dec("deny", 10*h), dec("approve", 90*h)), item(dec("approve", 0))))
	b.Add(chain("complete", false, item(dec("pend", 0), dec("approve", 20*h))))
	b.Add(chain("complete", false, item(dec("approve", 0))))
	b.Add(chain("complete", false, item(dec("pend", 0), dec("approve", 50*h))))
	next := chain("pended", true, item(dec("pend", 0)))
	next.Created, next.Summary.Category = t0.AddDate(0, 1, 0), ""
	b.Add(next)
	m := b.Metrics()
	if got := [2]float64{*m.Standard.DecisionHoursMean, *m.Standard.DecisionHoursMedian}; got != [2]float64{20, 15} {
		t.Errorf("standard mean, median = %v hours, want [20 15] (0, 10, 20, 50)", got)
	}
	if m.Expedited.DecisionHoursMean != nil {
		t.Errorf("expedited has a decision time but nothing expedited was decided")
	}
	type key struct{ Month, Category string }
	var got []key
	for _, l := range [][]pas.Breakdown{m.ByMonth, m.ByCategory, m.ByMonthAndCategory} {
		for _, d := range l {
			got = append(got, key{d.Month, d.Category})
		}
	}
	want := []key{{"2026-03", ""}, {"2026-04", ""}, {"", "imaging"}, {"", "unspecified"}, {"2026-03", "imaging"}, {"2026-04", "unspecified"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("breakdown keys (-want +got):\n%s", diff)
	}
	if m.ByMonth[1].Expedited.Pended != 1 || m.ByMonth[0].Standard.Received != 4 {
		t.Errorf("by month = %+v", m.ByMonth)
	}
}
