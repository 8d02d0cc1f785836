// Package umevents gives a payer's own utilization-management system the
// events of prior-authorization requests — pend created, information
// received, deadline approaching, decided, reopened, appeal received — as an
// ordered feed (GET /review/events?after=N) and as signed webhooks to each
// payer client that registered one.
//
// The pas package records each event on its authorization in the same
// atomic write as the change it announces (store/umevents.go). This
// package's workers, under leases in the store so that any number of
// Priora processes may run them:
//
//   - the feed writer moves recorded events into the ordered feed, one
//     writer at a time, idempotently (an event keeps its one number when
//     the move is replayed after a crash);
//   - the deadline scan records deadline-approaching events (pas);
//   - a webhook deliverer per payer client posts the feed's events after
//     the client's cursor, in order, at least once, signed with HMAC-SHA256
//     under the client's secret, retried with exponential backoff; the
//     cursor is in the store, so a restart resumes where delivery stopped.
package umevents

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/priora/priora/internal/outbound"
	"github.com/priora/priora/internal/worker"
	"github.com/priora/priora/store"
)

// Config wires a Service.
type Config struct {
	Store *store.Store
	// BaseURL is Priora's public origin: events link to BaseURL/review/...
	BaseURL string
	// Outbound is the policy every webhook request goes through.
	Outbound *outbound.Policy
	// Deadlines records deadline-approaching events for deadlines within
	// lead (pas.Service.MarkDeadlines); nil: no deadline scan.
	Deadlines func(ctx context.Context, lead time.Duration) (int, error)
	// Counter, when set, counts events fed and webhook deliveries.
	Counter Counter
	Now     func() time.Time
	Log     *slog.Logger
	Options Options
}

// Counter is told of UM events moved into the feed and of each webhook
// delivery attempt.
type Counter interface {
	UMEventFed(kind string)
	UMWebhook(ok bool)
}

// Options tune the workers. Zero values take the defaults in brackets.
type Options struct {
	// PollInterval is how often the workers look for work [1s].
	PollInterval time.Duration
	// Lease is how long a worker holds the feed or a client's webhook [30s].
	Lease time.Duration
	// DeadlineLead is how long before a decision deadline the
	// deadline-approaching event is recorded [24h] (PRIORA_UM_DEADLINE_LEAD).
	DeadlineLead time.Duration
	// DeadlineEvery is how often deadlines are scanned [1m].
	DeadlineEvery time.Duration
	// RetryBase and RetryCap bound the exponential backoff of a failing
	// webhook [1s, 10m].
	RetryBase, RetryCap time.Duration
	// OutboxSlack is how long an outbox entry whose event is not (yet) on
	// its chain is kept: longer than any change takes to be written [2m].
	OutboxSlack time.Duration
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.PollInterval, time.Second)
	def(&o.Lease, 30*time.Second)
	def(&o.DeadlineLead, 24*time.Hour)
	def(&o.DeadlineEvery, time.Minute)
	def(&o.RetryBase, time.Second)
	def(&o.RetryCap, 10*time.Minute)
	def(&o.OutboxSlack, 2*time.Minute)
}

// Service runs the UM event workers and reads the feed. It is safe for
// concurrent use.
type Service struct {
	cfg    Config
	opt    Options
	log    *slog.Logger
	st     *store.Store
	feed   *store.UMFeed
	leases *store.Subscriptions
	client *http.Client
	owner  string
	// fed wakes the webhook deliverers when the feed grew.
	fed chan struct{}
	// lastSeq is the feed's last number as this process's feed writer
	// left it, under the feed lease of generation lastGen; only the feed
	// loop touches them (see feedSome).
	lastSeq int64
	lastGen int
}

// New returns a Service, creating the feed's collections and indexes.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Outbound == nil {
		p, err := outbound.New(outbound.Config{})
		if err != nil {
			return nil, err
		}
		cfg.Outbound = p
	}
	cfg.Options.defaults()
	feed, err := cfg.Store.UMFeed(ctx)
	if err != nil {
		return nil, err
	}
	leases, err := cfg.Store.Subscriptions(ctx) // the leases collection
	if err != nil {
		return nil, err
	}
	return &Service{
		cfg: cfg, opt: cfg.Options, log: cfg.Log, st: cfg.Store, feed: feed, leases: leases,
		client: cfg.Outbound.Client(outbound.MaxTimeout, 64<<10),
		owner:  worker.Owner(),
		fed:    make(chan struct{}, 1),
	}, nil
}

// Run runs the feed writer, the deadline scan and the webhook deliverers
// until ctx ends, and returns when they have stopped.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() {
		s.loop(ctx, "feed", s.opt.PollInterval, nil, func(ctx context.Context) (bool, error) {
			busy, n, err := s.feedSome(ctx)
			if n > 0 {
				select {
				case s.fed <- struct{}{}:
				default:
				}
			}
			return busy, err
		})
	})
	if s.cfg.Deadlines != nil {
		wg.Go(func() {
			s.loop(ctx, "deadlines", s.opt.DeadlineEvery, nil, func(ctx context.Context) (bool, error) {
				_, err := s.cfg.Deadlines(ctx, s.opt.DeadlineLead)
				return false, err
			})
		})
	}
	wg.Go(func() {
		s.loop(ctx, "webhooks", s.opt.PollInterval, s.fed, func(ctx context.Context) (bool, error) {
			return false, s.deliverAll(ctx)
		})
	})
	wg.Wait()
}

// loop runs step while it reports more work; otherwise it waits for a
// wake-up or the next tick.
func (s *Service) loop(ctx context.Context, name string, every time.Duration, wake <-chan struct{}, step func(context.Context) (bool, error)) {
	// The worker's name is the origin of its store commands (store.CommandCounts).
	worker.Loop(store.WithOrigin(ctx, "UM events "+name), s.log, "UM events "+name, every, wake, step)
}

const (
	feedLease  = "um-feed"
	outboxPage = 200
)

// feedSome moves the recorded events of the chains in one page of the
// outbox into the feed, under the feed writer's lease. It reports whether
// the outbox may hold more, and how many events it appended.
func (s *Service) feedSome(ctx context.Context) (busy bool, appended int, err error) {
	// Look before taking the lease: an idle poll writes nothing.
	if entries, err := s.feed.Outbox(ctx, 1); err != nil || len(entries) == 0 {
		return false, 0, err
	}
	now := s.cfg.Now()
	l, err := s.acquire(ctx, feedLease, now)
	if errors.Is(err, store.ErrConflict) {
		return false, 0, nil // another process writes the feed
	}
	if err != nil {
		return false, 0, err
	}
	defer s.release(ctx, l)
	entries, err := s.feed.Outbox(ctx, outboxPage)
	if err != nil || len(entries) == 0 {
		return false, 0, err
	}
	// The feed's last number: what this writer left, when the lease
	// passed to no one else since (the generation after ours); else read
	// from the store. Reading it is a sort of the whole feed on the
	// embedded engine, which pushes down no other lookup than by a string
	// _id: once a second, that grew with every event ever fed. A stale
	// number could only come from a writer whose lease ran out while it
	// appended; Append then meets a taken number and reads the last one.
	last := s.lastSeq
	if s.lastGen == 0 || l.Gen != s.lastGen+1 {
		if last, err = s.feed.LastSeq(ctx); err != nil {
			return false, 0, err
		}
	}
	defer func() { s.lastSeq, s.lastGen = last, l.Gen }()
	var order []string
	byAuth := map[string][]store.UMOutboxEntry{}
	for _, e := range entries {
		if byAuth[e.Auth] == nil {
			order = append(order, e.Auth)
		}
		byAuth[e.Auth] = append(byAuth[e.Auth], e)
	}
	for _, auth := range order {
		now := s.cfg.Now()
		// A lease is taken over only once it has expired, so one with
		// more than three quarters of its term left is still ours: it is
		// renewed (a write and a read) only when it is older.
		if l.Until.Sub(now) < s.opt.Lease*3/4 {
			if err := s.leases.Renew(ctx, l, now, now.Add(s.opt.Lease), s.opt.Lease/2); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return false, appended, nil // the lease ran out: another writer goes on
				}
				return false, appended, err
			}
		}
		n, err := s.feedChain(ctx, auth, byAuth[auth], &last, now)
		appended += n
		if err != nil {
			return false, appended, err
		}
	}
	return len(entries) == outboxPage, appended, nil
}

// feedChain appends the chain's events not yet in the feed, in their
// order, and removes the outbox entries they answer.
func (s *Service) feedChain(ctx context.Context, auth string, entries []store.UMOutboxEntry, last *int64, now time.Time) (int, error) {
	events, err := s.chainEvents(ctx, auth, entries)
	if err != nil {
		return 0, err
	}
	n := 0
	has := map[string]bool{}
	if events != nil {
		upTo, err := s.feed.FedUpTo(ctx, auth)
		if err != nil {
			return 0, err
		}
		for i := range events {
			ev := &events[i]
			has[ev.ID] = true
			if ev.Number <= upTo {
				continue
			}
			if _, err := s.feed.Append(ctx, ev, last); err != nil {
				return n, err
			}
			n++
			if s.cfg.Counter != nil {
				s.cfg.Counter.UMEventFed(ev.Kind)
			}
			if err := s.feed.SetFedUpTo(ctx, auth, ev.Number); err != nil {
				return n, err
			}
		}
	}
	for _, e := range entries {
		// An entry whose event is not on the chain belongs to a change
		// still being written (keep it) or to one that lost its race
		// and was never written (forget it after the slack).
		if has[e.Event] || now.Sub(e.Created) > s.opt.OutboxSlack {
			if err := s.feed.DoneOutbox(ctx, e.Event); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// chainEvents are the UM events of the chain as written, up to the newest
// of entries: when every entry names the version that made its event, the
// events of the newest such revision (one read; a later version's events
// have entries of their own); else those of the chain's latest version.
// nil means the chain (or that version) is not written yet.
func (s *Service) chainEvents(ctx context.Context, auth string, entries []store.UMOutboxEntry) ([]store.UMEvent, error) {
	version := 0
	for _, e := range entries {
		if e.Version == 0 {
			version = 0
			break
		}
		version = max(version, e.Version)
	}
	if version > 0 {
		events, err := s.feed.EventsAt(ctx, auth, version)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if events == nil && err == nil {
			events = []store.UMEvent{}
		}
		return events, err
	}
	a, err := s.st.Authorization(ctx, "", auth)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if a.UMEvents == nil {
		return []store.UMEvent{}, nil
	}
	return a.UMEvents, nil
}

// acquire takes a lease. It is not cut short by ctx: a lease taken in
// the store while shutting down must be seen taken, so that it is
// released, rather than held by no one until it expires.
func (s *Service) acquire(ctx context.Context, key string, now time.Time) (*store.Lease, error) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return s.leases.Acquire(actx, key, s.owner, now, now.Add(s.opt.Lease))
}

func (s *Service) release(ctx context.Context, l *store.Lease) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.leases.Release(rctx, l); err != nil {
		s.log.WarnContext(ctx, "UM event lease not released", "lease", l.Key, "err", err)
	}
}
