package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The subscription collections are laid out so that every document has one
// writer at a time. FerretDB v1 (the embedded engine) runs an update as
// read, modify, write without isolation: two concurrent conditional updates
// of one document can both "match", and one's changes are lost. Only an
// insert into a unique index is atomic there. So:
//
//   - subscriptions: the client's configuration; written by its owner only.
//   - channels: delivery state per subscription; written only by the holder
//     of the subscription's lease.
//   - handshakes: one document per configuration version that needs a
//     handshake; inserted by the owner, deleted by the lease holder.
//   - notifications: one per (subscription, event); inserted by dispatchers
//     (a deterministic _id and a unique (subscription, seq) index make that
//     idempotent and gap-free), then updated by the lease holder only.
//   - leases: one document per lease generation; taking a lease is inserting
//     the next generation, so two processes never both hold one.
//   - dispatches: fan-out progress per authorization; authorizations
//     themselves are written by the pas package only.

// Notification statuses.
const (
	NotePending   = "pending"
	NoteDelivered = "delivered"
	// NoteDropped is an event whose content is gone (its authorization was
	// purged); it keeps its number so that the numbering stays gap-free.
	NoteDropped = "dropped"
)

// Subscription is a topic subscription as its owner configured it.
type Subscription struct {
	ID      string    `bson:"_id"`
	Tenant  string    `bson:"tenant"`
	Client  string    `bson:"client"`
	Version int       `bson:"version"`
	Created time.Time `bson:"created"`
	Updated time.Time `bson:"updated"`

	// Resource is the Subscription JSON as the client sent it; id, status,
	// meta and error are filled in when it is rendered.
	Resource string `bson:"resource"`
	// Off is true when the owner set status off: no events, no delivery.
	Off bool `bson:"off"`
	// HandshakeVersion is the configuration version whose endpoint must
	// accept a handshake before events are delivered.
	HandshakeVersion int      `bson:"handshakeVersion"`
	Endpoint         string   `bson:"endpoint"`
	Payload          string   `bson:"payload"`
	Headers          []string `bson:"headers,omitempty"`
	// Filters are the org-identifier values; an authorization matches when
	// any of its sender ids or provider identifiers is among them.
	Filters   []string      `bson:"filters"`
	Heartbeat time.Duration `bson:"heartbeat,omitempty"`
	Timeout   time.Duration `bson:"timeout"`
}

// Channel is the delivery state of a subscription. Only the holder of the
// subscription's lease writes it.
type Channel struct {
	ID string `bson:"_id"`
	// Handshaken is the last configuration version whose handshake
	// succeeded; HandshakeFailed the last one whose handshake failed for good.
	Handshaken      int `bson:"handshaken"`
	HandshakeFailed int `bson:"handshakeFailed"`
	// Attempts counts failures in a row; RetryAt is when to try again.
	Attempts int       `bson:"attempts"`
	RetryAt  time.Time `bson:"retryAt"`
	// Error explains the last failure in words safe to show the owner.
	Error string `bson:"error,omitempty"`
	// HeartbeatAt is when a heartbeat is due; nil when none is.
	HeartbeatAt *time.Time `bson:"heartbeatAt,omitempty"`
	// Delivered is the number of the last event delivered.
	Delivered int `bson:"delivered"`
}

// Notification is one event for one subscription. Its ID is derived from
// (subscription, authorization, event), so fanning an event out twice
// stores it once; Seq is its gap-free number within the subscription.
type Notification struct {
	ID            string    `bson:"_id"`
	Subscription  string    `bson:"subscription"`
	Seq           int       `bson:"seq"`
	Authorization string    `bson:"authorization"`
	Event         int       `bson:"event"`
	Response      int       `bson:"response"`
	Created       time.Time `bson:"created"`
	Status        string    `bson:"status"`
	Delivered     time.Time `bson:"deliveredAt,omitempty"`
}

// Lease is one generation of a lease on a key.
type Lease struct {
	ID    string    `bson:"_id"`
	Key   string    `bson:"key"`
	Gen   int       `bson:"gen"`
	Owner string    `bson:"owner"`
	Until time.Time `bson:"until"`
}

// SubscriptionQuery selects a tenant's subscriptions; empty fields match all.
type SubscriptionQuery struct {
	IDs       []string
	Endpoints []string
}

// Subscriptions keeps topic subscriptions, their delivery state and their
// notifications. Get it from Store.Subscriptions; it is safe for
// concurrent use.
type Subscriptions struct {
	subs       *mongo.Collection
	channels   *mongo.Collection
	handshakes *mongo.Collection
	notes      *mongo.Collection
	queue      *mongo.Collection // undelivered notifications (noteQueueEntry)
	leases     *mongo.Collection
	dispatches *mongo.Collection
	store      *Store
	// hints remembers each subscription's last notification number that
	// this process wrote (AddNotification).
	hintMu sync.Mutex
	hints  map[string]int
}

// Subscriptions returns the subscription collections, creating their
// indexes (creating an index that exists is a no-op).
func (s *Store) Subscriptions(ctx context.Context) (*Subscriptions, error) {
	ss := &Subscriptions{
		subs:       s.db.Collection("subscriptions"),
		channels:   s.db.Collection("subscriptionChannels"),
		handshakes: s.db.Collection("subscriptionHandshakes"),
		notes:      s.db.Collection("notifications"),
		queue:      s.db.Collection(collNoteQueue),
		leases:     s.db.Collection("leases"),
		dispatches: s.db.Collection("dispatches"),
		store:      s,
	}
	idx := []struct {
		c      *mongo.Collection
		keys   bson.D
		unique bool
	}{
		{ss.subs, bson.D{{Key: "tenant", Value: 1}, {Key: "filters", Value: 1}}, false},
		{ss.channels, bson.D{{Key: "heartbeatAt", Value: 1}}, false},
		{ss.notes, bson.D{{Key: "subscription", Value: 1}, {Key: "seq", Value: 1}}, true},
		{ss.notes, bson.D{{Key: "status", Value: 1}, {Key: "subscription", Value: 1}}, false},
		{ss.leases, bson.D{{Key: "key", Value: 1}, {Key: "gen", Value: 1}}, true},
	}
	for _, i := range idx {
		m := mongo.IndexModel{Keys: i.keys}
		if i.unique {
			m.Options = options.Index().SetUnique(true)
		}
		if err := s.createIndexes(ctx, i.c, m); err != nil {
			return nil, err
		}
	}
	return ss, nil
}

// Create inserts a new subscription at version 1 and asks for the
// handshake of that version.
func (ss *Subscriptions) Create(ctx context.Context, sub *Subscription) error {
	sub.Version, sub.HandshakeVersion = 1, 1
	if _, err := ss.subs.InsertOne(ctx, sub); err != nil {
		if isDuplicate(err) {
			return ErrDuplicate
		}
		return fmt.Errorf("store: create subscription: %w", err)
	}
	return ss.askHandshake(ctx, sub.ID, 1)
}

func (ss *Subscriptions) askHandshake(ctx context.Context, id string, version int) error {
	_, err := ss.handshakes.InsertOne(ctx, bson.D{
		{Key: "_id", Value: id + "/" + strconv.Itoa(version)}, {Key: "subscription", Value: id}, {Key: "version", Value: version},
	})
	if err != nil && !isDuplicate(err) {
		return fmt.Errorf("store: ask for a handshake: %w", err)
	}
	return nil
}

// Get loads a subscription of a tenant ("" = any tenant).
func (ss *Subscriptions) Get(ctx context.Context, tenant, id string) (*Subscription, error) {
	f := bson.D{{Key: "_id", Value: id}}
	if tenant != "" {
		f = append(f, bson.E{Key: "tenant", Value: tenant})
	}
	var sub Subscription
	if err := ss.subs.FindOne(ctx, f).Decode(&sub); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("store: load subscription: %w", err)
	}
	return &sub, nil
}

// Find lists a tenant's subscriptions, oldest first.
func (ss *Subscriptions) Find(ctx context.Context, tenant string, q SubscriptionQuery) ([]Subscription, error) {
	f := bson.D{{Key: "tenant", Value: tenant}}
	if len(q.IDs) > 0 {
		f = append(f, bson.E{Key: "_id", Value: bson.D{{Key: "$in", Value: q.IDs}}})
	}
	if len(q.Endpoints) > 0 {
		f = append(f, bson.E{Key: "endpoint", Value: bson.D{{Key: "$in", Value: q.Endpoints}}})
	}
	return ss.find(ctx, f)
}

// ByIDs loads subscriptions of any tenant by id (for delivery workers).
func (ss *Subscriptions) ByIDs(ctx context.Context, ids []string) ([]Subscription, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return ss.find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
}

// Matching lists a tenant's subscriptions, other than those turned off,
// whose filters name any of ids.
func (ss *Subscriptions) Matching(ctx context.Context, tenant string, ids []string) ([]Subscription, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return ss.find(ctx, bson.D{
		{Key: "tenant", Value: tenant},
		{Key: "filters", Value: bson.D{{Key: "$in", Value: ids}}},
		{Key: "off", Value: false},
	})
}

func (ss *Subscriptions) find(ctx context.Context, f bson.D) ([]Subscription, error) {
	cur, err := ss.subs.Find(ctx, f, options.Find().SetSort(bson.D{{Key: "created", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("store: find subscriptions: %w", err)
	}
	var out []Subscription
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: find subscriptions: %w", err)
	}
	return out, nil
}

// Update replaces a subscription's configuration if it is still at
// sub.Version, bumps the version, and asks for a handshake when
// sub.HandshakeVersion is the new version. ErrConflict means another
// update came first. (On the embedded engine two truly simultaneous
// updates of one subscription can both succeed; its owner is the only
// writer, so that is a client racing itself.)
func (ss *Subscriptions) Update(ctx context.Context, sub *Subscription) error {
	prev := sub.Version
	next := *sub
	next.Version = prev + 1
	res, err := ss.subs.ReplaceOne(ctx, bson.D{{Key: "_id", Value: sub.ID}, {Key: "version", Value: prev}}, &next)
	if err != nil {
		return fmt.Errorf("store: update subscription: %w", err)
	}
	if res.MatchedCount == 0 {
		return ErrConflict
	}
	*sub = next
	if sub.HandshakeVersion == sub.Version {
		return ss.askHandshake(ctx, sub.ID, sub.Version)
	}
	return nil
}

// Delete removes a tenant's subscription with its delivery state and
// notifications.
func (ss *Subscriptions) Delete(ctx context.Context, tenant, id string) error {
	res, err := ss.subs.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "tenant", Value: tenant}})
	if err != nil {
		return fmt.Errorf("store: delete subscription: %w", err)
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	ss.hintMu.Lock()
	delete(ss.hints, id)
	ss.hintMu.Unlock()
	for _, c := range []struct {
		coll  *mongo.Collection
		field string
	}{{ss.notes, "subscription"}, {ss.queue, "subscription"}, {ss.handshakes, "subscription"}, {ss.channels, "_id"}, {ss.leases, "key"}} {
		if _, err := c.coll.DeleteMany(ctx, bson.D{{Key: c.field, Value: id}}); err != nil {
			return fmt.Errorf("store: delete subscription state: %w", err)
		}
	}
	return nil
}

// Channels loads the delivery state of subscriptions; a subscription
// nobody delivered for yet has none.
func (ss *Subscriptions) Channels(ctx context.Context, ids []string) (map[string]Channel, error) {
	out := map[string]Channel{}
	if len(ids) == 0 {
		return out, nil
	}
	cur, err := ss.channels.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return nil, fmt.Errorf("store: load channels: %w", err)
	}
	var chs []Channel
	if err := cur.All(ctx, &chs); err != nil {
		return nil, fmt.Errorf("store: load channels: %w", err)
	}
	for _, c := range chs {
		out[c.ID] = c
	}
	return out, nil
}

// SaveChannel writes a subscription's delivery state. Call it only while
// holding the subscription's lease.
func (ss *Subscriptions) SaveChannel(ctx context.Context, ch *Channel) error {
	_, err := ss.channels.ReplaceOne(ctx, bson.D{{Key: "_id", Value: ch.ID}}, ch, options.Replace().SetUpsert(true))
	if err != nil && !isDuplicate(err) {
		return fmt.Errorf("store: save channel: %w", err)
	}
	return nil
}

// HandshakeDone forgets the handshake requests of a subscription up to
// version. Call it only while holding the subscription's lease.
func (ss *Subscriptions) HandshakeDone(ctx context.Context, id string, version int) error {
	_, err := ss.handshakes.DeleteMany(ctx, bson.D{{Key: "subscription", Value: id}, {Key: "version", Value: bson.D{{Key: "$lte", Value: version}}}})
	if err != nil {
		return fmt.Errorf("store: forget handshakes: %w", err)
	}
	return nil
}

// Due lists, in no particular order, subscriptions that may have delivery
// work at now: a handshake asked for, an undelivered notification, or (up
// to limit of these) a heartbeat due. The first two are distinct values,
// so that one subscription's long backlog cannot hide the others'. The
// caller checks each under its lease.
func (ss *Subscriptions) Due(ctx context.Context, now time.Time, limit int) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	keep := func(ids []string) {
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	for _, c := range []struct {
		coll *mongo.Collection
		f    bson.D
	}{{ss.handshakes, bson.D{}}, {ss.queue, bson.D{}}} {
		var ids []string
		if err := c.coll.Distinct(ctx, "subscription", c.f).Decode(&ids); err != nil {
			return nil, fmt.Errorf("store: due subscriptions: %w", err)
		}
		keep(ids)
	}
	cur, err := ss.channels.Find(ctx, bson.D{{Key: "heartbeatAt", Value: bson.D{{Key: "$lte", Value: now}}}},
		options.Find().SetLimit(int64(limit)).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("store: due subscriptions: %w", err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: due subscriptions: %w", err)
	}
	for _, d := range docs {
		keep([]string{d.ID})
	}
	return out, nil
}

// AddNotification stores n unless a notification with its ID exists, and
// gives it the next number of its subscription (n.Seq). Replaying it is
// safe: an existing notification keeps its number, and numbers have no
// gaps because a number is taken only by a successful insert (a unique
// index on subscription and number arbitrates between dispatchers).
//
// The subscription's last number comes from this process's memory when it
// has one: reading it from the store is a sort of the subscription's
// notifications, which the embedded engine answers by decoding every
// notification ever sent. A remembered number can only be low (numbers
// grow; ids of deleted subscriptions are never reused), and a low one
// only meets a taken number, which moves it on; after hintTries such
// meetings the number is read from the store.
func (ss *Subscriptions) AddNotification(ctx context.Context, n *Notification) error {
	const tries, hintTries = 50, 8
	queued := false
	last, known := ss.lastHint(n.Subscription)
	for i := range tries {
		var have Notification
		err := ss.notes.FindOne(ctx, bson.D{{Key: "_id", Value: n.ID}}).Decode(&have)
		if err == nil {
			n.Seq = have.Seq
			if have.Status == NotePending {
				return ss.enqueue(ctx, n) // a replay also repairs its entry
			}
			return nil
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return fmt.Errorf("store: find notification: %w", err)
		}
		if !queued {
			if err := ss.enqueue(ctx, n); err != nil {
				return err
			}
			queued = true
		}
		if !known || i >= hintTries {
			if last, err = ss.LastSeq(ctx, n.Subscription); err != nil {
				return err
			}
			known = true
		}
		n.Seq = last + 1
		if _, err := ss.notes.InsertOne(ctx, n); err != nil {
			if isDuplicate(err) {
				// This ID (seen at the top) or this number was taken
				// meanwhile: look again.
				last = n.Seq
				continue
			}
			return fmt.Errorf("store: add notification: %w", err)
		}
		ss.setLastHint(n.Subscription, n.Seq)
		// Again after the insert: an entry that was already there (left by
		// an attempt that crashed) may have been pruned meanwhile as one
		// whose notification never came; pruneQueue checks again after it
		// deletes, so between the two no pending notification stays
		// without an entry.
		return ss.enqueue(ctx, n)
	}
	return fmt.Errorf("store: add notification %s: no free number after %d tries", n.ID, tries)
}

func (ss *Subscriptions) lastHint(sub string) (int, bool) {
	ss.hintMu.Lock()
	defer ss.hintMu.Unlock()
	n, ok := ss.hints[sub]
	return n, ok
}

// maxHints bounds the remembered numbers: one per subscription notified,
// kept for the process's life (a subscription deleted elsewhere is never
// told of), so past the bound they are forgotten and read again.
const maxHints = 4096

func (ss *Subscriptions) setLastHint(sub string, seq int) {
	ss.hintMu.Lock()
	defer ss.hintMu.Unlock()
	if ss.hints == nil || len(ss.hints) >= maxHints {
		ss.hints = map[string]int{}
	}
	ss.hints[sub] = max(ss.hints[sub], seq)
}

// LastSeq is the number of the last notification of a subscription (0 when
// there is none): the number of events since the subscription started.
func (ss *Subscriptions) LastSeq(ctx context.Context, sub string) (int, error) {
	var last Notification
	err := ss.notes.FindOne(ctx, bson.D{{Key: "subscription", Value: sub}},
		options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}}).SetProjection(bson.D{{Key: "seq", Value: 1}})).Decode(&last)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return 0, fmt.Errorf("store: last notification: %w", err)
	}
	return last.Seq, nil
}

// Pending lists up to limit undelivered notifications of a subscription in
// number order.
func (ss *Subscriptions) Pending(ctx context.Context, sub string, limit int) ([]Notification, error) {
	cur, err := ss.notes.Find(ctx, bson.D{{Key: "subscription", Value: sub}, {Key: "status", Value: NotePending}},
		options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("store: pending notifications: %w", err)
	}
	var out []Notification
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: pending notifications: %w", err)
	}
	if len(out) < limit {
		// The backlog is drained: drop the queue entries left behind.
		if err := ss.pruneQueue(ctx, sub, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SetNotificationStatus marks a notification delivered or dropped. Call it
// only while holding the subscription's lease.
func (ss *Subscriptions) SetNotificationStatus(ctx context.Context, id, status string, at time.Time) error {
	_, err := ss.notes.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: status}, {Key: "deliveredAt", Value: at}}}})
	if err != nil {
		return fmt.Errorf("store: mark notification: %w", err)
	}
	// After the status: an entry left by a crash here is dropped once the
	// backlog is drained (pruneQueue).
	if _, err := ss.queue.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("store: notification queue: %w", err)
	}
	return nil
}

// The notification queue
//
// The delivery worker asks every second which subscriptions have
// undelivered notifications. Asked of the notifications, which are kept
// once delivered (they number a subscription's events), that is a filter
// the embedded engine answers by decoding every notification ever sent. So
// the undelivered ones are also listed in a collection of their own that
// stays small: one entry per notification, inserted before the
// notification (no undelivered notification lacks one), removed once it is
// marked delivered or dropped. Entries left behind — by a crash between
// those writes, or for a notification that was never written — are
// dropped when the subscription's backlog is drained, the latter after
// noteQueueSlack. BackfillNoteQueue adds the entries of notifications an
// older Priora left undelivered.

const (
	collNoteQueue  = "notificationQueue"
	noteQueueSlack = 10 * time.Minute
)

type noteQueueEntry struct {
	ID           string    `bson:"_id"` // the notification's
	Subscription string    `bson:"subscription"`
	Created      time.Time `bson:"created"`
}

func (ss *Subscriptions) enqueue(ctx context.Context, n *Notification) error {
	e := noteQueueEntry{ID: n.ID, Subscription: n.Subscription, Created: time.Now().UTC()}
	if err := ss.store.insert(ctx, ss.queue, e); err != nil && !isDuplicate(err) {
		return fmt.Errorf("store: notification queue: %w", err)
	}
	return nil
}

// pruneQueue drops the subscription's queue entries whose notification is
// not among pending (the undelivered ones, all of them): those of
// notifications delivered or dropped, and those of notifications never
// written, once older than noteQueueSlack.
func (ss *Subscriptions) pruneQueue(ctx context.Context, sub string, pending []Notification) error {
	cur, err := ss.queue.Find(ctx, bson.D{{Key: "subscription", Value: sub}})
	if err != nil {
		return fmt.Errorf("store: notification queue: %w", err)
	}
	var entries []noteQueueEntry
	if err := cur.All(ctx, &entries); err != nil {
		return fmt.Errorf("store: notification queue: %w", err)
	}
	undelivered := map[string]bool{}
	for _, n := range pending {
		undelivered[n.ID] = true
	}
	for _, e := range entries {
		if undelivered[e.ID] {
			continue
		}
		switch status, err := ss.noteStatus(ctx, e.ID); {
		case err != nil:
			return err
		case status == "" && time.Since(e.Created) < noteQueueSlack:
			continue // its notification may still be being written
		case status == NotePending:
			continue // written after the backlog was read
		}
		if _, err := ss.queue.DeleteOne(ctx, bson.D{{Key: "_id", Value: e.ID}}); err != nil {
			return fmt.Errorf("store: notification queue: %w", err)
		}
		// A notification written since the look above gets its entry back
		// (AddNotification queues again after its insert, for the other
		// order).
		switch status, err := ss.noteStatus(ctx, e.ID); {
		case err != nil:
			return err
		case status == NotePending:
			if err := ss.enqueue(ctx, &Notification{ID: e.ID, Subscription: e.Subscription}); err != nil {
				return err
			}
		}
	}
	return nil
}

// noteStatus is a notification's status, "" when there is no such
// notification.
func (ss *Subscriptions) noteStatus(ctx context.Context, id string) (string, error) {
	var n Notification
	err := ss.notes.FindOne(ctx, bson.D{{Key: "_id", Value: id}}, options.FindOne().SetProjection(bson.D{{Key: "status", Value: 1}})).Decode(&n)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: notification queue: %w", err)
	}
	return n.Status, nil
}

// ForgetQueue drops the queue entries of a subscription that no longer
// exists.
func (ss *Subscriptions) ForgetQueue(ctx context.Context, sub string) error {
	if _, err := ss.queue.DeleteMany(ctx, bson.D{{Key: "subscription", Value: sub}}); err != nil {
		return fmt.Errorf("store: notification queue: %w", err)
	}
	return nil
}

// BackfillNoteQueue adds the queue entries of undelivered notifications
// that have none (written by an older Priora), from one read of them. It
// returns how many it found.
func (ss *Subscriptions) BackfillNoteQueue(ctx context.Context) (int, error) {
	cur, err := ss.notes.Find(ctx, bson.D{{Key: "status", Value: NotePending}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "subscription", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("store: notification queue backfill: %w", err)
	}
	var notes []Notification
	if err := cur.All(ctx, &notes); err != nil {
		return 0, fmt.Errorf("store: notification queue backfill: %w", err)
	}
	qc, err := ss.queue.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("store: notification queue backfill: %w", err)
	}
	var queued []noteQueueEntry
	if err := qc.All(ctx, &queued); err != nil {
		return 0, fmt.Errorf("store: notification queue backfill: %w", err)
	}
	has := make(map[string]bool, len(queued))
	for _, e := range queued {
		has[e.ID] = true
	}
	now := time.Now().UTC()
	var docs []any
	for _, n := range notes {
		if !has[n.ID] {
			docs = append(docs, noteQueueEntry{ID: n.ID, Subscription: n.Subscription, Created: now})
		}
	}
	if err := ss.store.insertNew(ctx, ss.queue, docs...); err != nil {
		return 0, fmt.Errorf("store: notification queue backfill: %w", err)
	}
	return len(notes), nil
}

// EventsSince lists the latest version of every authorization with an
// event created at or after since (every one with events when since is
// zero), found through the outbox rather than by scanning the chains.
//
// Fan-out progress is kept in a collection of its own (see Dispatched)
// rather than on the authorization, which only pas writes.
func (ss *Subscriptions) EventsSince(ctx context.Context, since time.Time) ([]Authorization, error) {
	return ss.store.ChainsWithEvents(ctx, since)
}

// Dispatched returns, per authorization, the number of its last event
// fanned out to subscriptions (absent: none).
func (ss *Subscriptions) Dispatched(ctx context.Context, ids []string) (map[string]int, error) {
	out := map[string]int{}
	if len(ids) == 0 {
		return out, nil
	}
	cur, err := ss.dispatches.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return nil, fmt.Errorf("store: dispatch progress: %w", err)
	}
	var docs []struct {
		ID   string `bson:"_id"`
		UpTo int    `bson:"upTo"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: dispatch progress: %w", err)
	}
	for _, d := range docs {
		out[d.ID] = d.UpTo
	}
	return out, nil
}

// SetDispatched records that an authorization's events up to upTo are
// fanned out. Dispatchers racing may leave a lower number than the
// highest written; that only makes a later scan redo idempotent work.
func (ss *Subscriptions) SetDispatched(ctx context.Context, id string, upTo int) error {
	_, err := ss.dispatches.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "_id", Value: id}, {Key: "upTo", Value: upTo}}, options.Replace().SetUpsert(true))
	if err != nil && !isDuplicate(err) {
		return fmt.Errorf("store: record dispatch: %w", err)
	}
	return nil
}

// Acquire takes the lease on key for owner until until, unless another
// owner holds an unexpired one (ErrConflict). Taking a lease inserts its
// next generation under a unique index, so of two processes racing for it
// exactly one wins, on MongoDB and on the embedded engine alike.
func (ss *Subscriptions) Acquire(ctx context.Context, key, owner string, now, until time.Time) (*Lease, error) {
	top, err := ss.topLease(ctx, key)
	if err != nil {
		return nil, err
	}
	gen := 1
	if top != nil {
		if top.Until.After(now) {
			return nil, ErrConflict
		}
		gen = top.Gen + 1
	}
	l := &Lease{ID: key + "#" + strconv.Itoa(gen), Key: key, Gen: gen, Owner: owner, Until: until}
	if _, err := ss.leases.InsertOne(ctx, l); err != nil {
		if isDuplicate(err) {
			return nil, ErrConflict
		}
		return nil, fmt.Errorf("store: take lease: %w", err)
	}
	// Forgetting older generations is housekeeping: the lease is taken
	// once its generation is inserted, so a failure here must not make the
	// holder believe otherwise (the lease would then be held by no one
	// until it expires). The next Acquire forgets them.
	_, _ = ss.leases.DeleteMany(ctx, bson.D{{Key: "key", Value: key}, {Key: "gen", Value: bson.D{{Key: "$lt", Value: gen}}}})
	return l, nil
}

// Renew extends a held lease until until. It refuses (ErrConflict) when
// the lease has less than margin left — so that a holder never revives a
// lease another process may already be taking over — or when another
// generation exists.
func (ss *Subscriptions) Renew(ctx context.Context, l *Lease, now, until time.Time, margin time.Duration) error {
	if !now.Add(margin).Before(l.Until) {
		return ErrConflict
	}
	if _, err := ss.leases.UpdateOne(ctx, bson.D{{Key: "_id", Value: l.ID}}, bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: until}}}}); err != nil {
		return fmt.Errorf("store: renew lease: %w", err)
	}
	top, err := ss.topLease(ctx, l.Key)
	if err != nil {
		return err
	}
	if top == nil || top.ID != l.ID {
		return ErrConflict
	}
	l.Until = until
	return nil
}

// Release gives up a held lease.
func (ss *Subscriptions) Release(ctx context.Context, l *Lease) error {
	_, err := ss.leases.UpdateOne(ctx, bson.D{{Key: "_id", Value: l.ID}}, bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: time.Unix(0, 0).UTC()}}}})
	if err != nil {
		return fmt.Errorf("store: release lease: %w", err)
	}
	return nil
}

func (ss *Subscriptions) topLease(ctx context.Context, key string) (*Lease, error) {
	var l Lease
	err := ss.leases.FindOne(ctx, bson.D{{Key: "key", Value: key}}, options.FindOne().SetSort(bson.D{{Key: "gen", Value: -1}})).Decode(&l)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read lease: %w", err)
	}
	return &l, nil
}
