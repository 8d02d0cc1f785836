package pas

import (
	"strings"
	"time"

	"github.com/priora/priora/store"
)

// DecisionCounter is told of every item decision once it is stored: its
// X12 review action and what made it (rule, criteria, reviewer, assertion,
// cancel). The metrics implement it.
type DecisionCounter interface {
	Decision(outcome, by string)
}

// countDecided reports the items of a that were decided by the change
// stored at now (every decision made in one change carries its time).
func (s *Service) countDecided(a *store.Authorization, now time.Time) {
	if s.cfg.Decisions == nil || a.Test {
		return
	}
	for _, it := range a.Items {
		d := it.Decision
		if d.At.IsZero() || !d.At.Equal(now) {
			continue
		}
		s.cfg.Decisions.Decision(d.ReviewAction, decidedBy(d))
		if oc, ok := s.cfg.Decisions.(OverturnCounter); ok && d.Overturned != "" {
			oc.Overturn(d.Overturned, d.Action)
		}
	}
}

// OverturnCounter, when the DecisionCounter implements it, is told of
// every decision that reverses the one reopened (reconsideration, appeal).
type OverturnCounter interface {
	Overturn(from, to string)
}

// decidedBy is the kind of decider of a decision: a rule's gold card, a
// rule's criteria, a plain rule, a CRD assertion, a reviewer, or the
// client (cancellations), from its By ("rule:ID", "reviewer:NPI",
// "crd:ASSERTION", …).
func decidedBy(d store.Decision) string {
	kind, _, _ := strings.Cut(d.By, ":")
	switch kind {
	case "crd":
		return "assertion"
	case "", "rule":
		switch {
		case d.GoldCard != "":
			return "gold-card"
		case len(d.Criteria) > 0:
			return "criteria"
		}
		return "rule"
	}
	return kind
}
