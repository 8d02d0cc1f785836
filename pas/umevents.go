package pas

import (
	"context"
	"errors"
	"time"

	"github.com/priora/priora/store"
)

// recordUMEvent records a utilization-management event of kind about the
// items with the given sequences (every item when none is given) on the
// chain. Call it inside a change (an apply function of change, or before
// a chain is created or updated): the event is written in the same atomic
// write as the change, and completed from the chain as written
// (finishUMEvents). Kinds: store.UMPendCreated, UMInfoReceived,
// UMDeadlineApproaching, UMDecided, UMReopened, UMAppealReceived.
func recordUMEvent(a *store.Authorization, kind string, now time.Time, sequences ...int) {
	a.AddUMEvent(kind, now, sequences...)
}

// finishUMEvents records what a change did for the payer's UM system —
// items newly pended (pend-created) and items decided after a pend
// (decided) — and completes every UM event of the change from the chain as
// written. response is the response version the change made (0: none).
// Call it after settle, right before the chain is written; calling it
// again in the same change (with the response number, say) records
// nothing twice.
func finishUMEvents(a *store.Authorization, now time.Time, response int) {
	var pended, decided []int
	for _, it := range a.Items {
		d := it.Decision
		if !d.At.Equal(now) {
			continue
		}
		prev := ""
		if n := len(it.History); n > 0 {
			prev = it.History[n-1].Action
		}
		switch {
		case d.Action == "pend" && prev != "pend" && d.Reopened == "":
			pended = append(pended, it.Sequence)
		case d.Action != "pend" && d.Action != "cancel" && prev == "pend":
			decided = append(decided, it.Sequence)
		}
	}
	// Calling it again in the same change records nothing twice.
	if len(pended) > 0 && !hasUMEventAt(a, now, store.UMReopened) && !hasUMEventAt(a, now, store.UMAppealReceived) &&
		!hasUMEventAt(a, now, store.UMPendCreated) {
		recordUMEvent(a, store.UMPendCreated, now, pended...)
	}
	if len(decided) > 0 && !hasUMEventAt(a, now, store.UMDecided) {
		recordUMEvent(a, store.UMDecided, now, decided...)
	}
	a.FillUMEvents(now, response)
}

// infoReceived records that the provider's update answered a request for
// information (once per change): about the items pended now.
func infoReceived(a *store.Authorization, now time.Time) {
	if hasUMEventAt(a, now, store.UMInfoReceived) {
		return
	}
	var pended []int
	for _, it := range a.Items {
		if it.Decision.Action == "pend" {
			pended = append(pended, it.Sequence)
		}
	}
	recordUMEvent(a, store.UMInfoReceived, now, pended...)
}

func hasUMEventAt(a *store.Authorization, now time.Time, kind string) bool {
	for _, ev := range a.UMEvents {
		if ev.Kind == kind && ev.At.Equal(now) {
			return true
		}
	}
	return false
}

// MarkDeadlines records a deadline-approaching UM event on every pended
// chain whose CMS-0057-F decision deadline is within lead of now (or has
// passed), once per chain and deadline: a later deadline (the clock moved)
// is announced again. Several processes may run it at once: the version
// guard lets one record each event and the others see it recorded. It
// returns how many events it recorded.
func (s *Service) MarkDeadlines(ctx context.Context, lead time.Duration) (int, error) {
	now := s.cfg.Now().UTC().Truncate(time.Millisecond)
	due, err := s.cfg.Store.PendedDueBy(ctx, now.Add(lead))
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, head := range due {
		if head.HasUMEvent(store.UMDeadlineApproaching, head.DueAt) {
			continue
		}
		ok, err := s.markDeadline(ctx, head.ID, now, lead)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// markDeadline records the deadline-approaching event of one chain, unless
// it needs none (any more).
func (s *Service) markDeadline(ctx context.Context, id string, now time.Time, lead time.Duration) (bool, error) {
	for range 8 {
		a, err := s.cfg.Store.Authorization(ctx, "", id)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if a.Status != "pended" || a.DueAt.After(now.Add(lead)) || a.HasUMEvent(store.UMDeadlineApproaching, a.DueAt) {
			return false, nil
		}
		var pended []int
		for _, it := range a.Items {
			if it.Decision.Action == "pend" {
				pended = append(pended, it.Sequence)
			}
		}
		recordUMEvent(a, store.UMDeadlineApproaching, now, pended...)
		a.FillUMEvents(now, 0)
		err = s.cfg.Store.UpdateAuthorization(ctx, a)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return err == nil, err
	}
	return false, nil // changing concurrently: the next scan looks again
}
