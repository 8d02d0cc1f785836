package pas

import (
	"context"
	"errors"
	"slices"
	"strings"
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
//
// It reads the deadline watch (store/duewatch.go), not the chains: the
// first call in a process, and one every backfillEvery, first adds the
// entries of chains an older Priora wrote (one scan of the heads). An
// entry is dropped once its chain has moved past it.
func (s *Service) MarkDeadlines(ctx context.Context, lead time.Duration) (int, error) {
	now := s.cfg.Now().UTC().Truncate(time.Millisecond)
	if err := s.backfillDueWatch(ctx); err != nil {
		return 0, err
	}
	watches, err := s.cfg.Store.DueWatches(ctx)
	if err != nil {
		return 0, err
	}
	byChain := map[string][]store.DueWatch{}
	var chains []string
	for _, w := range watches {
		if byChain[w.Auth] == nil {
			chains = append(chains, w.Auth)
		}
		byChain[w.Auth] = append(byChain[w.Auth], w)
	}
	earliest := func(id string) time.Time {
		t := byChain[id][0].DueAt
		for _, w := range byChain[id][1:] {
			if w.DueAt.Before(t) {
				t = w.DueAt
			}
		}
		return t
	}
	slices.SortFunc(chains, func(a, b string) int {
		if c := earliest(a).Compare(earliest(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	n := 0
	var errs []error
	for _, id := range chains {
		if earliest(id).After(now.Add(lead)) {
			continue // not due yet: its entries stay
		}
		ok, err := s.markDeadline(ctx, id, now, lead)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			n++
		}
		if err := s.pruneDueWatch(ctx, id, byChain[id], now); err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// backfillEvery is how often a process adds the watch entries of chains
// written without them (by an older Priora during a rolling upgrade).
const backfillEvery = 6 * time.Hour

func (s *Service) backfillDueWatch(ctx context.Context) error {
	s.backfillMu.Lock()
	defer s.backfillMu.Unlock()
	if !s.backfilled.IsZero() && time.Since(s.backfilled) < backfillEvery {
		return nil
	}
	if _, err := s.cfg.Store.BackfillDueWatch(ctx); err != nil {
		return err
	}
	s.backfilled = time.Now()
	return nil
}

// pruneDueWatch drops the watch entries of a chain that no longer need
// watching: those of older versions (a newer version that needs watching
// has its own entry), all of them once the chain needs none, and an
// entry of a version that was never written (a crash or a lost race) an
// hour after it was made.
func (s *Service) pruneDueWatch(ctx context.Context, id string, ws []store.DueWatch, now time.Time) error {
	a, err := s.cfg.Store.Authorization(ctx, "", id)
	missing := errors.Is(err, store.ErrNotFound)
	if err != nil && !missing {
		return err
	}
	var drop []string
	for _, w := range ws {
		switch {
		case missing || w.Version > a.Version:
			if now.Sub(w.Created) > time.Hour {
				drop = append(drop, w.ID)
			}
		case w.Version < a.Version || !store.NeedsDueWatch(a):
			drop = append(drop, w.ID)
		}
	}
	return s.cfg.Store.DropDueWatch(ctx, drop...)
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
