package pas

import (
	"context"
	"time"

	"github.com/priora/priora/store"
)

// RunFinisher applies delayed rules (decision.after + decision.then in the
// rules file) when they fall due, until ctx ends. Several Priora processes
// may run it on one store: the version guard lets exactly one apply each
// decision, and the others see it done.
func (s *Service) RunFinisher(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.finishDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) finishDue(ctx context.Context) {
	due, err := s.cfg.Store.DueAutomaticDecisions(ctx, s.cfg.Now().UTC(), 50)
	if err != nil {
		if ctx.Err() == nil {
			s.log.ErrorContext(ctx, "finisher: list due decisions", "err", err)
		}
		return
	}
	for _, a := range due {
		_, err := s.change(ctx, "", a.ID, func(a *store.Authorization, now time.Time) error {
			changed := false
			for k := range a.Items {
				d := a.Items[k].Decision
				if d.Action != "pend" || d.FinalRule == "" || d.After.After(now) {
					continue
				}
				nd := store.Decision{
					Action: d.FinalRule, ReviewAction: reviewActionOf(d.FinalRule), RuleID: d.RuleID,
					Reason: "delayed rule " + d.RuleID + " finished the review", By: "rule:" + d.RuleID,
					At: now, ReviewNumber: d.ReviewNumber,
				}
				if nd.Action == "deny" {
					nd.Note = "Not certified after review."
				}
				setDecision(&a.Items[k], nd)
				changed = true
			}
			if !changed {
				// A stale schedule entry (the chain moved on): put it right.
				if err := s.cfg.Store.SyncSchedule(ctx, a); err != nil {
					return err
				}
				return errNoChange
			}
			return nil
		})
		if err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "finisher: apply delayed rule", "authorization", a.ID, "err", err)
		}
	}
}
