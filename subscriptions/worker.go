package subscriptions

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/priora/priora/internal/worker"
	"github.com/priora/priora/store"
)

const (
	deliverBatch = 20
	dueBatch     = 1000
	// dispatchSlack is how far back each scan for events looks beyond the
	// previous one: longer than any decision takes to be written.
	dispatchSlack = 2 * time.Minute
)

// Run fans out events and delivers notifications until ctx ends, then
// returns once every loop and every delivery in flight has stopped. Any
// number of processes may run it on one store.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.loop(ctx, "dispatch", s.kick, s.dispatchSome) })
	wg.Go(func() { s.loop(ctx, "deliver", s.wake, s.deliverSome) })
	if !s.cfg.Store.FerretDB() {
		// Replicas of an older release, still serving during a rolling
		// upgrade, queue no notification (store: the notification queue):
		// add theirs. On MongoDB an indexed read of the undelivered ones;
		// on FerretDB a read of every notification, the cost the queue
		// removes, so there it runs only at start (New).
		wg.Go(func() {
			worker.Loop(ctx, s.log, "subscription queue backfill", noteQueueBackfillEvery, nil, func(ctx context.Context) (bool, error) {
				_, err := s.subs.BackfillNoteQueue(ctx)
				return false, err
			})
		})
	}
	wg.Wait()
	s.sched.wait()
}

// noteQueueBackfillEvery is how often a process on MongoDB queues the
// undelivered notifications that have no queue entry.
const noteQueueBackfillEvery = time.Minute

// loop runs step while it finds work; when it finds none (or fails) it
// waits for a wake-up or the poll interval.
func (s *Service) loop(ctx context.Context, name string, wake <-chan struct{}, step func(context.Context) (bool, error)) {
	worker.Loop(ctx, s.log, "subscription "+name, s.opt.PollInterval, wake, step)
}

// dispatchSome fans out the events created since the last scan (minus
// dispatchSlack, so that a decision written slowly is not missed) and
// reports whether there may be more. The first scan of a process looks at
// every authorization with events, so a restart catches up.
func (s *Service) dispatchSome(ctx context.Context) (bool, error) {
	scan := s.now()
	auths, err := s.subs.EventsSince(ctx, s.since)
	if err != nil {
		return false, err
	}
	ids := make([]string, len(auths))
	for i := range auths {
		ids[i] = auths[i].ID
	}
	done, err := s.subs.Dispatched(ctx, ids)
	if err != nil {
		return false, err
	}
	// Number events in the order they happened, across authorizations.
	type item struct {
		a  *store.Authorization
		ev store.Event
	}
	var items []item
	for i := range auths {
		for _, ev := range auths[i].Events {
			if ev.Number > done[auths[i].ID] {
				items = append(items, item{&auths[i], ev})
			}
		}
	}
	slices.SortStableFunc(items, func(x, y item) int {
		return cmp.Or(x.ev.Created.Compare(y.ev.Created), cmp.Compare(x.a.ID, y.a.ID), cmp.Compare(x.ev.Number, y.ev.Number))
	})
	matching := map[string][]store.Subscription{}
	added := 0
	var errs []error
	failed := map[string]bool{}
	for _, it := range items {
		a := it.a
		if failed[a.ID] {
			continue
		}
		subs, ok := matching[a.ID]
		if !ok {
			if subs, err = s.subs.Matching(ctx, a.Tenant, append(slices.Clone(a.SenderIDs), a.ProviderNPIs...)); err != nil {
				return false, err
			}
			matching[a.ID] = subs
		}
		err := s.fanOut(ctx, a.ID, it.ev, subs)
		if err == nil {
			err = s.subs.SetDispatched(ctx, a.ID, it.ev.Number)
		}
		if err != nil {
			failed[a.ID] = true // its later events wait for the next scan
			errs = append(errs, err)
			continue
		}
		added += len(subs)
	}
	if added > 0 {
		s.Kick()
	}
	if len(errs) == 0 {
		s.since = scan.Add(-dispatchSlack)
	}
	return false, errors.Join(errs...)
}

// fanOut stores one event as a notification for each subscription.
func (s *Service) fanOut(ctx context.Context, auth string, ev store.Event, subs []store.Subscription) error {
	for _, sub := range subs {
		n := &store.Notification{
			ID:           sub.ID + "/" + auth + "/" + strconv.Itoa(ev.Number),
			Subscription: sub.ID, Authorization: auth, Event: ev.Number, Response: ev.Response,
			Created: ev.Created, Status: store.NotePending,
		}
		if err := s.subs.AddNotification(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// deliverSome looks for subscriptions with delivery work due and starts
// a delivery for each one the scheduler has room for: at most Workers at a
// time, at most TenantWorkers of them for one tenant, tenants taken in
// turn. A delivery that sent something wakes the loop when it ends, so
// that its subscription's remaining work and freed room are used at once.
// It never reports itself busy: the deliveries' ends drive it.
func (s *Service) deliverSome(ctx context.Context) (bool, error) {
	now := s.now()
	ids, err := s.subs.Due(ctx, now, dueBatch)
	if err != nil || len(ids) == 0 {
		return false, err
	}
	ids = slices.DeleteFunc(ids, s.sched.running)
	chs, err := s.subs.Channels(ctx, ids)
	if err != nil {
		return false, err
	}
	// Skip channels that wait for a retry, unless a heartbeat is due.
	ids = slices.DeleteFunc(ids, func(id string) bool {
		ch := chs[id]
		return ch.RetryAt.After(now) && (ch.HeartbeatAt == nil || ch.HeartbeatAt.After(now))
	})
	if len(ids) == 0 {
		return false, nil
	}
	subs, err := s.subs.ByIDs(ctx, ids)
	if err != nil {
		return false, err
	}
	// A subscription deleted while a notification for it was being written
	// can leave a queue entry behind, which would name it here every poll.
	if len(subs) < len(ids) {
		found := make(map[string]bool, len(subs))
		for _, sub := range subs {
			found[sub.ID] = true
		}
		for _, id := range ids {
			if !found[id] {
				if err := s.subs.ForgetQueue(ctx, id); err != nil {
					return false, err
				}
			}
		}
	}
	for _, sub := range fairOrder(subs) {
		id := sub.ID
		s.sched.start(ctx, sub.Tenant, id, s.opt.Workers, s.opt.TenantWorkers, func(ctx context.Context) {
			did, err := s.work(ctx, id)
			if err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "subscription delivery failed", "subscription", id, "err", err)
			}
			if did {
				select {
				case s.wake <- struct{}{}:
				default:
				}
			}
		})
	}
	return false, nil
}

// fairOrder shuffles subscriptions and then interleaves the tenants: one
// of each tenant's in turn, so that no tenant's many subscriptions come
// before another tenant's one.
func fairOrder(subs []store.Subscription) []store.Subscription {
	rand.Shuffle(len(subs), func(i, j int) { subs[i], subs[j] = subs[j], subs[i] })
	var tenants []string
	by := map[string][]store.Subscription{}
	for _, sub := range subs {
		if by[sub.Tenant] == nil {
			tenants = append(tenants, sub.Tenant)
		}
		by[sub.Tenant] = append(by[sub.Tenant], sub)
	}
	out := make([]store.Subscription, 0, len(subs))
	for round := 0; len(out) < len(subs); round++ {
		for _, t := range tenants {
			if round < len(by[t]) {
				out = append(out, by[t][round])
			}
		}
	}
	return out
}

// work takes a subscription's lease and does its due work: the handshake,
// else its undelivered notifications in order, else a heartbeat. It
// reports whether it sent anything.
func (s *Service) work(ctx context.Context, id string) (bool, error) {
	now := s.now()
	l, err := s.subs.Acquire(ctx, id, s.owner, now, now.Add(s.opt.Lease))
	if errors.Is(err, store.ErrConflict) {
		return false, nil // another worker has it
	}
	if err != nil {
		return false, err
	}
	defer func() {
		// Free the subscription for the next round, even when shutting down.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.subs.Release(rctx, l); err != nil {
			s.log.WarnContext(ctx, "subscription lease not released", "subscription", id, "err", err)
		}
	}()
	sub, err := s.subs.Get(ctx, "", id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil // deleted meanwhile
	}
	if err != nil {
		return false, err
	}
	chs, err := s.subs.Channels(ctx, []string{id})
	if err != nil {
		return false, err
	}
	ch := chs[id]
	ch.ID = id
	w := &channelWork{s: s, sub: sub, ch: &ch, lease: l}
	switch {
	case sub.Off:
		return false, s.subs.HandshakeDone(ctx, id, math.MaxInt)
	case ch.Handshaken < sub.HandshakeVersion && ch.HandshakeFailed < sub.HandshakeVersion:
		if ch.RetryAt.After(now) {
			return false, nil
		}
		return true, w.handshake(ctx)
	case ch.Handshaken < sub.HandshakeVersion:
		return false, s.subs.HandshakeDone(ctx, id, sub.HandshakeVersion) // failed for good; a PUT asks again
	}
	if err := s.subs.HandshakeDone(ctx, id, sub.HandshakeVersion); err != nil {
		return false, err
	}
	sent := false
	if !ch.RetryAt.After(now) {
		if sent, err = w.backlog(ctx); err != nil || ch.Attempts > 0 {
			return sent, err
		}
	}
	if !sent && ch.HeartbeatAt != nil && !ch.HeartbeatAt.After(now) {
		return true, w.heartbeat(ctx)
	}
	return sent, nil
}

// channelWork is one worker's turn on one subscription, under its lease.
type channelWork struct {
	s     *Service
	sub   *store.Subscription
	ch    *store.Channel
	lease *store.Lease
}

// send renews the lease for one request and posts body; errLeaseLost
// means another process may own the subscription now.
func (w *channelWork) send(ctx context.Context, body []byte) error {
	s := w.s
	now := s.now()
	if err := s.subs.Renew(ctx, w.lease, now, now.Add(w.sub.Timeout+s.opt.Lease), s.opt.Lease/2); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errLeaseLost
		}
		return err
	}
	return s.post(ctx, w.sub, body)
}

var errLeaseLost = errors.New("subscriptions: lease lost")

// handshake sends the handshake of the subscription's current endpoint:
// success makes it active, HandshakeAttempts failures in a row error.
func (w *channelWork) handshake(ctx context.Context) error {
	s, sub, ch := w.s, w.sub, w.ch
	events, err := s.subs.LastSeq(ctx, sub.ID)
	if err != nil {
		return err
	}
	err = w.send(ctx, s.notification(sub, typeHandshake, statusRequested, events, nil, nil))
	if ctx.Err() != nil || errors.Is(err, errLeaseLost) {
		return nil
	}
	s.counted(typeHandshake, err, 0)
	now := s.now()
	if err == nil {
		s.log.InfoContext(ctx, "subscription handshake succeeded", "subscription", sub.ID)
		ch.Handshaken = sub.HandshakeVersion
		w.succeeded(now)
		if err := s.subs.SaveChannel(ctx, ch); err != nil {
			return err
		}
		return s.subs.HandshakeDone(ctx, sub.ID, sub.HandshakeVersion)
	}
	ch.Attempts++
	ch.RetryAt = now.Add(s.backoff(ch.Attempts))
	ch.Error = "handshake failed: " + deliveryFailed
	s.log.WarnContext(ctx, "subscription handshake failed", "subscription", sub.ID, "attempt", ch.Attempts, "err", err)
	if ch.Attempts < s.opt.HandshakeAttempts {
		return s.subs.SaveChannel(ctx, ch)
	}
	ch.HandshakeFailed, ch.Attempts, ch.HeartbeatAt = sub.HandshakeVersion, 0, nil
	ch.RetryAt = now.Add(s.opt.RetryCap) // nothing to do until a PUT asks again
	if err := s.subs.SaveChannel(ctx, ch); err != nil {
		return err
	}
	return s.subs.HandshakeDone(ctx, sub.ID, sub.HandshakeVersion)
}

// backlog sends the subscription's undelivered notifications in number
// order, stopping at the first failure: later events wait for earlier ones.
func (w *channelWork) backlog(ctx context.Context) (sent bool, err error) {
	for {
		notes, err := w.s.subs.Pending(ctx, w.sub.ID, deliverBatch)
		if err != nil || len(notes) == 0 {
			return sent, err
		}
		for i := range notes {
			ok, err := w.deliver(ctx, &notes[i])
			if err != nil || !ok {
				return sent, err
			}
			sent = true
		}
	}
}

// deliver sends one event notification and records the outcome; it
// reports whether the channel may go on to the next one.
func (w *channelWork) deliver(ctx context.Context, n *store.Notification) (bool, error) {
	s, sub, ch := w.s, w.sub, w.ch
	a, err := s.cfg.Store.Authorization(ctx, "", n.Authorization)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	var resp *store.Response
	if a != nil {
		resp, _ = a.ResponseByNumber(n.Response)
	}
	if resp == nil {
		s.log.WarnContext(ctx, "notification dropped: its response is gone", "subscription", sub.ID, "event", n.Seq)
		return true, s.subs.SetNotificationStatus(ctx, n.ID, store.NoteDropped, s.now())
	}
	ev := &event{number: n.Seq, at: n.Created, focus: focusURL([]byte(resp.JSON), n.ID)}
	err = w.send(ctx, s.notification(sub, typeEvent, statusActive, n.Seq, ev, json.RawMessage(resp.JSON)))
	if ctx.Err() != nil || errors.Is(err, errLeaseLost) {
		return false, nil
	}
	now := s.now()
	s.counted(typeEvent, err, now.Sub(n.Created))
	if err != nil {
		ch.Attempts++
		ch.RetryAt = now.Add(s.backoff(ch.Attempts))
		ch.Error = "notification delivery failed: " + deliveryFailed
		ch.HeartbeatAt = nil
		s.log.WarnContext(ctx, "notification delivery failed", "subscription", sub.ID, "event", n.Seq, "attempt", ch.Attempts, "err", err)
		return false, s.subs.SaveChannel(ctx, ch)
	}
	if err := s.subs.SetNotificationStatus(ctx, n.ID, store.NoteDelivered, now); err != nil {
		return false, err
	}
	s.log.InfoContext(ctx, "notification delivered", "subscription", sub.ID, "event", n.Seq, "authorization", n.Authorization)
	ch.Delivered = n.Seq
	w.succeeded(now)
	return true, s.subs.SaveChannel(ctx, ch)
}

// heartbeat tells an idle endpoint that the subscription is alive.
func (w *channelWork) heartbeat(ctx context.Context) error {
	s, sub, ch := w.s, w.sub, w.ch
	events, err := s.subs.LastSeq(ctx, sub.ID)
	if err != nil {
		return err
	}
	err = w.send(ctx, s.notification(sub, typeHeartbeat, statusActive, events, nil, nil))
	if ctx.Err() != nil || errors.Is(err, errLeaseLost) {
		return nil
	}
	s.counted(typeHeartbeat, err, 0)
	now := s.now()
	if err == nil {
		w.succeeded(now)
		return s.subs.SaveChannel(ctx, ch)
	}
	ch.Attempts++
	ch.Error = "heartbeat failed: " + deliveryFailed
	ch.HeartbeatAt = ptr(now.Add(s.backoff(ch.Attempts)))
	s.log.WarnContext(ctx, "subscription heartbeat failed", "subscription", sub.ID, "attempt", ch.Attempts, "err", err)
	return s.subs.SaveChannel(ctx, ch)
}

// succeeded resets the channel after a notification got through: no
// failures, the next heartbeat one period away.
func (w *channelWork) succeeded(now time.Time) {
	w.ch.Attempts, w.ch.Error, w.ch.RetryAt, w.ch.HeartbeatAt = 0, "", time.Time{}, nil
	if w.sub.Heartbeat > 0 {
		// A subscription stored before the minimum was enforced keeps it too.
		w.ch.HeartbeatAt = ptr(now.Add(max(w.sub.Heartbeat, w.s.opt.MinHeartbeat)))
	}
}

func ptr[T any](v T) *T { return &v }

// backoff is the wait after the n-th failure in a row.
func (s *Service) backoff(n int) time.Duration {
	return worker.Backoff(s.opt.RetryBase, s.opt.RetryCap, n)
}

// deliveryFailed is all a subscription's owner is told about a failed
// delivery (Subscription.error, $status): whether the connection was
// refused, the outbound policy refused the address, the endpoint timed
// out or answered 401 must not show, or Priora would be a port scanner.
// The log has the cause.
const deliveryFailed = "the endpoint did not accept the notification"

// maxAnswer is how much of an endpoint's answer is read (and discarded).
const maxAnswer = 64 << 10

// errCircuitOpen is a delivery not attempted: the endpoint's breaker is open.
var errCircuitOpen = errors.New("circuit breaker open: recent deliveries to this endpoint failed")

// post sends a notification with the subscription's content type, headers
// and timeout, through the endpoint's circuit breaker; any answer but 2xx
// is a failure. Errors are for the log only (see deliveryFailed).
func (s *Service) post(ctx context.Context, sub *store.Subscription, body []byte) error {
	key := sub.Tenant + " " + origin(sub.Endpoint)
	if !s.breakers.allow(key, s.cfg.Now()) {
		return errCircuitOpen
	}
	err := s.request(ctx, sub, body)
	if ctx.Err() != nil {
		s.breakers.abandon(key) // cancelled or shutting down: says nothing of the endpoint
		return err
	}
	s.breakers.record(key, err == nil, s.cfg.Now())
	return err
}

func (s *Service) request(ctx context.Context, sub *store.Subscription, body []byte) error {
	timeout := min(sub.Timeout, maxTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.Endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("the endpoint URL cannot be used: %w", err)
	}
	setHeaders(req.Header, sub.Headers)
	req.Header.Set("Content-Type", sub.Payload)
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("the endpoint did not answer within %s", timeout)
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body) // bounded by the client (maxAnswer)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the endpoint answered %d %s", resp.StatusCode, strings.TrimSpace(http.StatusText(resp.StatusCode)))
	}
	return nil
}

// origin is scheme://host[:port] of an endpoint URL.
func origin(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return endpoint
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}
