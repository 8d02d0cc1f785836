package subscriptions

import (
	"context"
	"sync"
	"time"
)

// scheduler runs one process's deliveries, one goroutine per subscription
// at a time, within a total and a per-tenant bound; a deleted
// subscription's delivery is cancelled through it.
type scheduler struct {
	mu      sync.Mutex
	wg      sync.WaitGroup
	slots   map[string]*slot // by subscription id
	tenants map[string]int   // deliveries in flight per tenant
}

type slot struct {
	tenant string
	cancel context.CancelFunc
}

func newScheduler() *scheduler {
	return &scheduler{slots: map[string]*slot{}, tenants: map[string]int{}}
}

// start runs fn for a subscription in a goroutine, unless it already has
// one or there is no room: total deliveries in flight, or perTenant of the
// tenant's. fn's context ends with ctx or when the subscription is
// cancelled.
func (sc *scheduler) start(ctx context.Context, tenant, id string, total, perTenant int, fn func(context.Context)) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.slots[id] != nil || len(sc.slots) >= total || sc.tenants[tenant] >= perTenant {
		return false
	}
	wctx, cancel := context.WithCancel(ctx)
	sc.slots[id] = &slot{tenant: tenant, cancel: cancel}
	sc.tenants[tenant]++
	sc.wg.Go(func() {
		defer func() {
			cancel()
			sc.mu.Lock()
			delete(sc.slots, id)
			if sc.tenants[tenant]--; sc.tenants[tenant] <= 0 {
				delete(sc.tenants, tenant)
			}
			sc.mu.Unlock()
		}()
		fn(wctx)
	})
	return true
}

// running says whether a delivery for the subscription is in flight here.
func (sc *scheduler) running(id string) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.slots[id] != nil
}

// cancel stops the subscription's delivery in flight here, if any.
func (sc *scheduler) cancel(id string) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if s := sc.slots[id]; s != nil {
		s.cancel()
	}
}

// wait returns when every delivery started has ended.
func (sc *scheduler) wait() { sc.wg.Wait() }

// breakers are per-process circuit breakers, one per tenant and endpoint
// origin: after `failures` failed deliveries in a row the breaker opens
// and deliveries fail at once, without a request, for `cooldown`; then
// one request probes (half-open) and its outcome closes or reopens it. A
// breaker is keyed by tenant too, so that one tenant's failing
// subscriptions cannot cut another tenant off the same endpoint.
type breakers struct {
	mu       sync.Mutex
	failures int
	cooldown time.Duration
	m        map[string]*breaker
}

type breaker struct {
	fails     int
	openUntil time.Time
	probing   bool
}

func newBreakers(failures int, cooldown time.Duration) *breakers {
	return &breakers{failures: failures, cooldown: cooldown, m: map[string]*breaker{}}
}

// allow says whether a request to key may be made now.
func (b *breakers) allow(key string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	br := b.m[key]
	switch {
	case br == nil || br.fails < b.failures:
		return true
	case br.probing || now.Before(br.openUntil):
		return false
	}
	br.probing = true // half-open: this request decides
	return true
}

// record notes the outcome of a request allowed by allow.
func (b *breakers) record(key string, ok bool, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok {
		delete(b.m, key) // closed; successes are the common case and keep no state
		return
	}
	br := b.m[key]
	if br == nil {
		br = &breaker{}
		b.m[key] = br
	}
	br.fails++
	br.probing = false
	if br.fails >= b.failures {
		br.openUntil = now.Add(b.cooldown)
	}
}

// abandon forgets a request allowed by allow that ended without an
// outcome (cancelled), so that a probe can be made again.
func (b *breakers) abandon(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if br := b.m[key]; br != nil {
		br.probing = false
	}
}
