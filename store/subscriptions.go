package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Subscription statuses (R4 Subscription.status).
const (
	SubRequested = "requested"
	SubActive    = "active"
	SubError     = "error"
	SubOff       = "off"
)

// Notification statuses.
const (
	NotePending   = "pending"
	NoteDelivered = "delivered"
	// NoteDropped is an event whose content is gone (its authorization was
	// purged); it keeps its number so that the numbering stays gap-free.
	NoteDropped = "dropped"
)

// Subscription is one topic subscription with the state of its channel. The
// client owns the configuration (written with a version guard); delivery
// workers own the channel state (written only under their lease).
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
	Status   string `bson:"status"`
	// Error explains the error status, in words safe to show the owner.
	Error    string   `bson:"error,omitempty"`
	Endpoint string   `bson:"endpoint"`
	Payload  string   `bson:"payload"`
	Headers  []string `bson:"headers,omitempty"`
	// Filters are the org-identifier values; an authorization matches when
	// any of its sender ids or provider identifiers is among them.
	Filters   []string      `bson:"filters"`
	Heartbeat time.Duration `bson:"heartbeat,omitempty"`
	Timeout   time.Duration `bson:"timeout"`

	// Handshaken is true once the current endpoint accepted a handshake.
	Handshaken bool `bson:"handshaken"`
	// Events is the number of events assigned to this subscription so far
	// (events-since-subscription-start); Delivered the last delivered one.
	Events    int `bson:"events"`
	Delivered int `bson:"delivered"`
	// Backlog is true while some notification may be undelivered.
	Backlog bool `bson:"backlog"`
	// Attempts counts failed attempts since the last success; RetryAt is
	// when the channel may be tried again.
	Attempts int       `bson:"attempts"`
	RetryAt  time.Time `bson:"retryAt"`
	// HeartbeatAt is when a heartbeat is due; nil when none is.
	HeartbeatAt *time.Time `bson:"heartbeatAt,omitempty"`
	LeaseOwner  string     `bson:"leaseOwner,omitempty"`
	LeaseUntil  time.Time  `bson:"leaseUntil"`
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

// SubscriptionQuery selects a tenant's subscriptions; empty fields match all.
type SubscriptionQuery struct {
	IDs       []string
	Endpoints []string
	Statuses  []string
}

// ChannelState is what a delivery worker records about a subscription's
// channel. Nil fields are left as they are.
type ChannelState struct {
	Status      *string
	Error       *string
	Handshaken  *bool
	Attempts    *int
	RetryAt     *time.Time
	Delivered   *int
	HeartbeatAt *time.Time
	// NoHeartbeat removes HeartbeatAt.
	NoHeartbeat bool
}

// Subscriptions keeps topic subscriptions and their notifications. Get it
// from Store.Subscriptions; it is safe for concurrent use.
type Subscriptions struct {
	subs  *mongo.Collection
	notes *mongo.Collection
	auths *mongo.Collection
}

// Subscriptions returns the subscription collections, creating their
// indexes (creating an index that exists is a no-op).
func (s *Store) Subscriptions(ctx context.Context) (*Subscriptions, error) {
	ss := &Subscriptions{
		subs:  s.db.Collection("subscriptions"),
		notes: s.db.Collection("notifications"),
		auths: s.authorizations,
	}
	idx := []struct {
		c      *mongo.Collection
		keys   bson.D
		unique bool
	}{
		{ss.subs, bson.D{{Key: "tenant", Value: 1}, {Key: "filters", Value: 1}}, false},
		{ss.subs, bson.D{{Key: "leaseUntil", Value: 1}}, false},
		{ss.notes, bson.D{{Key: "subscription", Value: 1}, {Key: "seq", Value: 1}}, true},
		{ss.notes, bson.D{{Key: "subscription", Value: 1}, {Key: "status", Value: 1}, {Key: "seq", Value: 1}}, false},
	}
	for _, i := range idx {
		m := mongo.IndexModel{Keys: i.keys}
		if i.unique {
			m.Options = options.Index().SetUnique(true)
		}
		if _, err := i.c.Indexes().CreateOne(ctx, m); err != nil {
			return nil, fmt.Errorf("store: create index on %s: %w", i.c.Name(), err)
		}
	}
	return ss, nil
}

// Create inserts a new subscription at version 1.
func (ss *Subscriptions) Create(ctx context.Context, sub *Subscription) error {
	sub.Version = 1
	if _, err := ss.subs.InsertOne(ctx, sub); err != nil {
		if isDuplicate(err) {
			return ErrDuplicate
		}
		return fmt.Errorf("store: create subscription: %w", err)
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
	for _, c := range []struct {
		field  string
		values []string
	}{{"_id", q.IDs}, {"endpoint", q.Endpoints}, {"status", q.Statuses}} {
		if len(c.values) > 0 {
			f = append(f, bson.E{Key: c.field, Value: bson.D{{Key: "$in", Value: c.values}}})
		}
	}
	return ss.find(ctx, f)
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
		{Key: "status", Value: bson.D{{Key: "$ne", Value: SubOff}}},
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

// Update writes the client-owned fields of sub (configuration, status and
// error, handshake and retry state) if nobody changed them since sub was
// read at sub.Version, and bumps the version; the counters and the lease
// stay as they are. ErrConflict means somebody did.
func (ss *Subscriptions) Update(ctx context.Context, sub *Subscription) error {
	prev := sub.Version
	set := bson.D{
		{Key: "version", Value: prev + 1},
		{Key: "updated", Value: sub.Updated},
		{Key: "resource", Value: sub.Resource},
		{Key: "status", Value: sub.Status},
		{Key: "error", Value: sub.Error},
		{Key: "endpoint", Value: sub.Endpoint},
		{Key: "payload", Value: sub.Payload},
		{Key: "headers", Value: sub.Headers},
		{Key: "filters", Value: sub.Filters},
		{Key: "heartbeat", Value: sub.Heartbeat},
		{Key: "timeout", Value: sub.Timeout},
		{Key: "handshaken", Value: sub.Handshaken},
		{Key: "attempts", Value: sub.Attempts},
		{Key: "retryAt", Value: sub.RetryAt},
	}
	upd := bson.D{{Key: "$set", Value: set}}
	if sub.HeartbeatAt != nil {
		set = append(set, bson.E{Key: "heartbeatAt", Value: *sub.HeartbeatAt})
		upd = bson.D{{Key: "$set", Value: set}}
	} else {
		upd = append(upd, bson.E{Key: "$unset", Value: bson.D{{Key: "heartbeatAt", Value: ""}}})
	}
	res, err := ss.subs.UpdateOne(ctx, bson.D{{Key: "_id", Value: sub.ID}, {Key: "version", Value: prev}}, upd)
	if err != nil {
		return fmt.Errorf("store: update subscription: %w", err)
	}
	if res.MatchedCount == 0 {
		return ErrConflict
	}
	sub.Version = prev + 1
	return nil
}

// Delete removes a tenant's subscription and its notifications.
func (ss *Subscriptions) Delete(ctx context.Context, tenant, id string) error {
	res, err := ss.subs.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "tenant", Value: tenant}})
	if err != nil {
		return fmt.Errorf("store: delete subscription: %w", err)
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	if _, err := ss.notes.DeleteMany(ctx, bson.D{{Key: "subscription", Value: id}}); err != nil {
		return fmt.Errorf("store: delete notifications: %w", err)
	}
	return nil
}

// Claim leases one subscription whose channel has work due at now — a
// handshake, undelivered notifications or a heartbeat — to owner until
// until. Only one owner holds a subscription's lease at a time, across
// processes; a crashed owner's lease simply expires. ErrNotFound means
// nothing is due.
func (ss *Subscriptions) Claim(ctx context.Context, owner string, now, until time.Time) (*Subscription, error) {
	due := bson.D{{Key: "$lte", Value: now}}
	f := bson.D{
		{Key: "leaseUntil", Value: bson.D{{Key: "$lt", Value: now}}},
		{Key: "status", Value: bson.D{{Key: "$ne", Value: SubOff}}},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: "status", Value: SubRequested}, {Key: "retryAt", Value: due}},
			bson.D{{Key: "handshaken", Value: true}, {Key: "backlog", Value: true}, {Key: "retryAt", Value: due}},
			bson.D{{Key: "heartbeatAt", Value: due}},
		}},
	}
	upd := bson.D{{Key: "$set", Value: bson.D{{Key: "leaseOwner", Value: owner}, {Key: "leaseUntil", Value: until}}}}
	var sub Subscription
	err := ss.subs.FindOneAndUpdate(ctx, f, upd,
		options.FindOneAndUpdate().SetReturnDocument(options.After).SetSort(bson.D{{Key: "leaseUntil", Value: 1}})).Decode(&sub)
	if err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("store: claim subscription: %w", err)
	}
	return &sub, nil
}

// Extend renews owner's lease on a subscription until until. ErrConflict
// means the lease was lost (it expired and another owner took it, or the
// subscription was deleted).
func (ss *Subscriptions) Extend(ctx context.Context, id, owner string, until time.Time) error {
	return ss.leased(ctx, id, owner, nil, bson.D{{Key: "$set", Value: bson.D{{Key: "leaseUntil", Value: until}}}})
}

// Release gives up owner's lease on a subscription.
func (ss *Subscriptions) Release(ctx context.Context, id, owner string) error {
	return ss.leased(ctx, id, owner, nil, bson.D{
		{Key: "$set", Value: bson.D{{Key: "leaseUntil", Value: time.Unix(0, 0).UTC()}}},
		{Key: "$unset", Value: bson.D{{Key: "leaseOwner", Value: ""}}},
	})
}

// SetChannel records channel state under owner's lease. When version is
// not 0 the write also requires the configuration to be unchanged since
// that version (a status decided for an old endpoint must not stick to a
// new one). ErrConflict means the lease or the version did not match.
func (ss *Subscriptions) SetChannel(ctx context.Context, id, owner string, version int, st ChannelState) error {
	var set bson.D
	add := func(k string, v any) { set = append(set, bson.E{Key: k, Value: v}) }
	if st.Status != nil {
		add("status", *st.Status)
	}
	if st.Error != nil {
		add("error", *st.Error)
	}
	if st.Handshaken != nil {
		add("handshaken", *st.Handshaken)
	}
	if st.Attempts != nil {
		add("attempts", *st.Attempts)
	}
	if st.RetryAt != nil {
		add("retryAt", *st.RetryAt)
	}
	if st.Delivered != nil {
		add("delivered", *st.Delivered)
	}
	if st.HeartbeatAt != nil {
		add("heartbeatAt", *st.HeartbeatAt)
	}
	var upd bson.D
	if len(set) > 0 {
		upd = append(upd, bson.E{Key: "$set", Value: set})
	}
	if st.NoHeartbeat {
		upd = append(upd, bson.E{Key: "$unset", Value: bson.D{{Key: "heartbeatAt", Value: ""}}})
	}
	if len(upd) == 0 {
		return nil
	}
	var guard bson.D
	if version != 0 {
		guard = bson.D{{Key: "version", Value: version}}
	}
	return ss.leased(ctx, id, owner, guard, upd)
}

// ClearBacklog marks a subscription as having nothing to deliver, provided
// owner holds its lease and no event beyond upTo has been assigned to it
// since. It reports whether it did.
func (ss *Subscriptions) ClearBacklog(ctx context.Context, id, owner string, upTo int) (bool, error) {
	err := ss.leased(ctx, id, owner, bson.D{{Key: "events", Value: bson.D{{Key: "$lte", Value: upTo}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "backlog", Value: false}}}})
	if errors.Is(err, ErrConflict) {
		return false, nil
	}
	return err == nil, err
}

func (ss *Subscriptions) leased(ctx context.Context, id, owner string, guard, upd bson.D) error {
	f := append(bson.D{{Key: "_id", Value: id}, {Key: "leaseOwner", Value: owner}}, guard...)
	res, err := ss.subs.UpdateOne(ctx, f, upd)
	if err != nil {
		return fmt.Errorf("store: update subscription channel: %w", err)
	}
	if res.MatchedCount == 0 {
		return ErrConflict
	}
	return nil
}

// AddNotification stores n unless a notification with its ID exists, gives
// it the next number of its subscription (n.Seq), and flags the subscription
// as having a backlog. Replaying it is safe: an existing notification keeps
// its number, and numbers have no gaps because a number is taken only by a
// successful insert (a unique index on subscription and number arbitrates
// between concurrent dispatchers).
func (ss *Subscriptions) AddNotification(ctx context.Context, n *Notification) error {
	const tries = 50
	for range tries {
		var have Notification
		err := ss.notes.FindOne(ctx, bson.D{{Key: "_id", Value: n.ID}}).Decode(&have)
		if err == nil {
			n.Seq = have.Seq
			return ss.bumpEvents(ctx, n.Subscription, have.Seq)
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return fmt.Errorf("store: find notification: %w", err)
		}
		var last Notification
		err = ss.notes.FindOne(ctx, bson.D{{Key: "subscription", Value: n.Subscription}},
			options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}}).SetProjection(bson.D{{Key: "seq", Value: 1}})).Decode(&last)
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return fmt.Errorf("store: last notification: %w", err)
		}
		n.Seq = last.Seq + 1
		if _, err := ss.notes.InsertOne(ctx, n); err != nil {
			if isDuplicate(err) {
				continue // this ID or this number was taken meanwhile: look again
			}
			return fmt.Errorf("store: add notification: %w", err)
		}
		return ss.bumpEvents(ctx, n.Subscription, n.Seq)
	}
	return fmt.Errorf("store: add notification %s: no free number after %d tries", n.ID, tries)
}

func (ss *Subscriptions) bumpEvents(ctx context.Context, sub string, seq int) error {
	_, err := ss.subs.UpdateOne(ctx, bson.D{{Key: "_id", Value: sub}}, bson.D{
		{Key: "$max", Value: bson.D{{Key: "events", Value: seq}}},
		{Key: "$set", Value: bson.D{{Key: "backlog", Value: true}}},
	})
	if err != nil {
		return fmt.Errorf("store: count subscription event: %w", err)
	}
	return nil
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
	return out, nil
}

// Notifications lists every notification of a subscription in number order.
func (ss *Subscriptions) Notifications(ctx context.Context, sub string) ([]Notification, error) {
	cur, err := ss.notes.Find(ctx, bson.D{{Key: "subscription", Value: sub}}, options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("store: notifications: %w", err)
	}
	var out []Notification
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: notifications: %w", err)
	}
	return out, nil
}

// SetNotificationStatus marks a pending notification delivered or dropped.
func (ss *Subscriptions) SetNotificationStatus(ctx context.Context, id, status string, at time.Time) error {
	_, err := ss.notes.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "status", Value: NotePending}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: status}, {Key: "deliveredAt", Value: at}}}})
	if err != nil {
		return fmt.Errorf("store: mark notification: %w", err)
	}
	return nil
}

// Undispatched lists up to limit authorizations with events not yet fanned
// out to subscriptions.
func (ss *Subscriptions) Undispatched(ctx context.Context, limit int) ([]Authorization, error) {
	cur, err := ss.auths.Find(ctx, bson.D{{Key: "undispatched", Value: true}}, options.Find().SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("store: undispatched authorizations: %w", err)
	}
	var out []Authorization
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: undispatched authorizations: %w", err)
	}
	return out, nil
}

// MarkDispatched records that the events of an authorization up to number
// upTo are fanned out, if the authorization is still at version (so that a
// concurrent decision, which adds an event, is never overwritten: its
// writer retries on the bumped version). ErrConflict means it changed.
func (ss *Subscriptions) MarkDispatched(ctx context.Context, id string, version, upTo int) error {
	res, err := ss.auths.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "version", Value: version}}, bson.D{
		{Key: "$set", Value: bson.D{{Key: "dispatched", Value: upTo}, {Key: "undispatched", Value: false}}},
		{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}},
	})
	if err != nil {
		return fmt.Errorf("store: mark dispatched: %w", err)
	}
	if res.MatchedCount == 0 {
		return ErrConflict
	}
	return nil
}
