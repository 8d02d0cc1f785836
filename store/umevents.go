package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Utilization-management events
//
// A payer's own UM system learns what happens to prior-authorization
// requests from UM events. Their way, without multi-document transactions:
//
//  1. pas appends the event to the chain (Authorization.UMEvents) in the
//     same revision as the change it announces, so the two never part;
//     writeKeys first upserts an entry for it in umOutbox, so no committed
//     event is ever missing from the outbox.
//  2. One feed writer at a time (a lease) reads the outbox, loads each
//     chain and appends its events not yet fed to umFeed under the next
//     sequence number (_id). A unique index on the event id makes the
//     append idempotent: replayed after a crash, an event keeps its one
//     number. umFed records per chain how far its events are fed.
//  3. Readers page through umFeed by number (GET /review/events?after=N);
//     webhook deliverers keep a cursor per payer client (umCursors).

// UM event kinds.
const (
	UMPendCreated         = "pend-created"
	UMInfoReceived        = "info-received"
	UMDeadlineApproaching = "deadline-approaching"
	UMDecided             = "decided"
	UMReopened            = "reopened"
	UMAppealReceived      = "appeal-received"
)

// UMKinds lists the UM event kinds.
var UMKinds = []string{UMPendCreated, UMInfoReceived, UMDeadlineApproaching, UMDecided, UMReopened, UMAppealReceived}

// UMEvent is one utilization-management event of a chain.
type UMEvent struct {
	// ID is unique across Priora and stable: "<authorization>-<number>".
	// Consumers de-duplicate deliveries by it.
	ID string `bson:"id" json:"id"`
	// Number is the event's position in its chain (1, 2, ...).
	Number        int       `bson:"number" json:"-"`
	Kind          string    `bson:"kind" json:"kind"`
	Tenant        string    `bson:"tenant" json:"tenant"`
	Authorization string    `bson:"authorization" json:"authorization"`
	At            time.Time `bson:"at" json:"at"`
	// Status is the chain's status after the change (pended, complete,
	// cancelled); DueAt its CMS-0057-F decision deadline.
	Status    string    `bson:"status" json:"status"`
	DueAt     time.Time `bson:"dueAt" json:"dueAt"`
	Expedited bool      `bson:"expedited" json:"expedited"`
	Test      bool      `bson:"test,omitempty" json:"test,omitempty"`
	// Response is the response version the change produced (0: none).
	Response int `bson:"response,omitempty" json:"response,omitempty"`
	// Items are the items the event is about, as they stand after it.
	Items []UMItem `bson:"items,omitempty" json:"items,omitempty"`
}

// UMItem is an item as a UM event reports it.
type UMItem struct {
	Sequence     int      `bson:"sequence" json:"sequence"`
	System       string   `bson:"system,omitempty" json:"system,omitempty"`
	Code         string   `bson:"code,omitempty" json:"code,omitempty"`
	Display      string   `bson:"display,omitempty" json:"display,omitempty"`
	Quantity     float64  `bson:"quantity,omitempty" json:"quantity,omitempty"`
	Action       string   `bson:"action" json:"action"`
	ReviewAction string   `bson:"reviewAction,omitempty" json:"reviewAction,omitempty"`
	ReasonCodes  []string `bson:"reasonCodes,omitempty" json:"reasonCodes,omitempty"`
	RequestInfo  []string `bson:"requestInfo,omitempty" json:"requestInfo,omitempty"`
}

// AddUMEvent appends a UM event of kind about the items with the given
// sequences (every item when none is given) to the chain. Call it inside
// the change the event announces, before the chain is written, so that the
// event is stored in the same atomic write; FillUMEvents completes it from
// the chain as written.
func (a *Authorization) AddUMEvent(kind string, now time.Time, sequences ...int) {
	n := len(a.UMEvents) + 1
	ev := UMEvent{ID: a.ID + "-" + strconv.Itoa(n), Number: n, Kind: kind, Tenant: a.Tenant, Authorization: a.ID, At: now}
	for _, it := range a.Items {
		if len(sequences) == 0 || slices.Contains(sequences, it.Sequence) {
			ev.Items = append(ev.Items, UMItem{Sequence: it.Sequence})
		}
	}
	a.UMEvents = append(a.UMEvents, ev)
}

// FillUMEvents completes the UM events made at now from the chain as it
// is about to be written: its status and deadline, the response version
// (when the change made one) and each item's decision.
func (a *Authorization) FillUMEvents(now time.Time, response int) {
	for i := range a.UMEvents {
		ev := &a.UMEvents[i]
		if !ev.At.Equal(now) {
			continue
		}
		ev.Status, ev.DueAt, ev.Expedited, ev.Test = a.Status, a.DueAt, a.Expedited, a.Test
		if ev.Response == 0 {
			ev.Response = response
		}
		for k := range ev.Items {
			for _, it := range a.Items {
				if it.Sequence != ev.Items[k].Sequence {
					continue
				}
				d := it.Decision
				ev.Items[k] = UMItem{
					Sequence: it.Sequence, System: it.System, Code: it.Code, Display: it.Display, Quantity: it.Quantity,
					Action: d.Action, ReviewAction: d.ReviewAction, ReasonCodes: d.ReasonCodes, RequestInfo: d.RequestInfo,
				}
			}
		}
	}
}

// HasUMEvent reports whether the chain has an event of kind at due date due.
func (a *Authorization) HasUMEvent(kind string, due time.Time) bool {
	for _, ev := range a.UMEvents {
		if ev.Kind == kind && ev.DueAt.Equal(due) {
			return true
		}
	}
	return false
}

// umOutboxEntry says a chain has a UM event that may not be fed yet.
type umOutboxEntry struct {
	ID      string    `bson:"_id"` // the event id
	Auth    string    `bson:"auth"`
	Created time.Time `bson:"created"`
	// Version is the chain version whose revision holds the event, once
	// written (0 on entries from before versions were recorded).
	Version int `bson:"version,omitempty"`
}

// writeUMOutbox records the chain's newest UM event in the outbox when
// this change made it (an older one is in the outbox or fed already).
func (s *Store) writeUMOutbox(ctx context.Context, a *Authorization) error {
	n := len(a.UMEvents)
	if n == 0 || a.UMEvents[n-1].At.Before(a.Updated) {
		return nil
	}
	ev := a.UMEvents[n-1]
	entry := umOutboxEntry{ID: ev.ID, Auth: a.ID, Created: ev.At, Version: a.Version}
	var err error
	if a.Version == 1 {
		// A new chain's event is new: insert it with the concurrent
		// requests' (group commit); a duplicate (a replayed request) is
		// the same entry.
		err = s.insert(ctx, s.db.Collection(collUMOutbox), entry)
	} else {
		_, err = s.db.Collection(collUMOutbox).ReplaceOne(ctx, bson.D{{Key: "_id", Value: ev.ID}},
			entry, options.Replace().SetUpsert(true))
	}
	if err != nil && !isDuplicate(err) {
		return fmt.Errorf("store: write UM outbox: %w", err)
	}
	return nil
}

const (
	collUMOutbox = "umOutbox"
	collUMFeed   = "umFeed"
	collUMFed    = "umFed"
	collUMCursor = "umCursors"
)

// FeedEvent is a UM event in the ordered feed.
type FeedEvent struct {
	Seq     int64 `bson:"_id" json:"seq"`
	UMEvent `bson:",inline"`
}

// UMCursor is a payer client's webhook delivery state. Only the holder
// of the client's webhook lease writes it.
type UMCursor struct {
	// ID is the client id.
	ID string `bson:"_id"`
	// Delivered is the sequence number of the last event delivered.
	Delivered int64 `bson:"delivered"`
	// Attempts counts failures in a row; RetryAt is when to try again.
	Attempts int       `bson:"attempts"`
	RetryAt  time.Time `bson:"retryAt"`
	// Error is the last failure, for the log and the operator.
	Error string `bson:"error,omitempty"`
	// Webhook is the URL the cursor counts for: a changed URL keeps the
	// cursor (the same consumer moved).
	Webhook string `bson:"webhook,omitempty"`
}

// UMFeed is the UM event feed: outbox, ordered feed and webhook cursors.
// Get it from Store.UMFeed; it is safe for concurrent use.
type UMFeed struct {
	outbox, feed, fed, cursors *mongo.Collection
	revisions                  *mongo.Collection
}

// UMFeed returns the UM event collections, creating their indexes.
func (s *Store) UMFeed(ctx context.Context) (*UMFeed, error) {
	f := &UMFeed{
		outbox:  s.db.Collection(collUMOutbox),
		feed:    s.db.Collection(collUMFeed),
		fed:     s.db.Collection(collUMFed),
		cursors: s.db.Collection(collUMCursor),

		revisions: s.revisions,
	}
	for _, c := range []*mongo.Collection{f.outbox, f.feed, f.fed, f.cursors} {
		if err := s.db.CreateCollection(ctx, c.Name()); err != nil && !isNamespaceExists(err) {
			return nil, fmt.Errorf("store: create collection %s: %w", c.Name(), err)
		}
	}
	if err := s.createIndexes(ctx, f.feed, mongo.IndexModel{Keys: bson.D{{Key: "id", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
		return nil, err
	}
	return f, nil
}

// UMOutboxEntry is an outbox entry: a chain with a UM event to feed.
type UMOutboxEntry struct {
	Event   string
	Auth    string
	Created time.Time
	// Version is the chain version that made the event (0: not recorded).
	Version int
}

// Outbox lists up to limit outbox entries, oldest first.
func (f *UMFeed) Outbox(ctx context.Context, limit int) ([]UMOutboxEntry, error) {
	cur, err := f.outbox.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "created", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("store: UM outbox: %w", err)
	}
	var docs []umOutboxEntry
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: UM outbox: %w", err)
	}
	out := make([]UMOutboxEntry, len(docs))
	for i, d := range docs {
		out[i] = UMOutboxEntry{Event: d.ID, Auth: d.Auth, Created: d.Created, Version: d.Version}
	}
	return out, nil
}

// EventsAt returns the UM events of version version of chain auth, as
// its revision holds them: one read by _id, where loading the latest
// version takes three. ErrNotFound means that version is not (yet)
// written. The events are those of whichever writer stored the version.
func (f *UMFeed) EventsAt(ctx context.Context, auth string, version int) ([]UMEvent, error) {
	type events struct {
		UMEvents []UMEvent `bson:"umEvents"`
	}
	var r struct {
		Z   []byte  `bson:"z"`
		Doc *events `bson:"doc"`
	}
	err := f.revisions.FindOne(ctx, bson.D{{Key: "_id", Value: revisionID(auth, version)}},
		options.FindOne().SetProjection(bson.D{{Key: "z", Value: 1}, {Key: "doc.umEvents", Value: 1}})).Decode(&r)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: load UM events of %s: %w", auth, err)
	}
	switch {
	case r.Z != nil:
		var e events
		if err := inflateBSON(r.Z, &e); err != nil {
			return nil, fmt.Errorf("store: load UM events of %s: %w", auth, err)
		}
		return e.UMEvents, nil
	case r.Doc != nil:
		return r.Doc.UMEvents, nil
	}
	return nil, nil
}

// DoneOutbox removes an outbox entry whose event is fed (or that leads
// nowhere).
func (f *UMFeed) DoneOutbox(ctx context.Context, event string) error {
	if _, err := f.outbox.DeleteOne(ctx, bson.D{{Key: "_id", Value: event}}); err != nil {
		return fmt.Errorf("store: UM outbox: %w", err)
	}
	return nil
}

// FedUpTo is the number of the chain's last event appended to the feed.
func (f *UMFeed) FedUpTo(ctx context.Context, auth string) (int, error) {
	var d struct {
		UpTo int `bson:"upTo"`
	}
	err := f.fed.FindOne(ctx, bson.D{{Key: "_id", Value: auth}}).Decode(&d)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return 0, fmt.Errorf("store: UM feed progress: %w", err)
	}
	return d.UpTo, nil
}

// SetFedUpTo records that the chain's events up to upTo are in the feed.
// Call it only while holding the feed writer's lease.
func (f *UMFeed) SetFedUpTo(ctx context.Context, auth string, upTo int) error {
	_, err := f.fed.ReplaceOne(ctx, bson.D{{Key: "_id", Value: auth}}, bson.D{{Key: "_id", Value: auth}, {Key: "upTo", Value: upTo}},
		options.Replace().SetUpsert(true))
	if err != nil && !isDuplicate(err) {
		return fmt.Errorf("store: UM feed progress: %w", err)
	}
	return nil
}

// LastSeq is the sequence number of the feed's last event (0: empty).
func (f *UMFeed) LastSeq(ctx context.Context) (int64, error) {
	var last struct {
		Seq int64 `bson:"_id"`
	}
	err := f.feed.FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}}).
		SetProjection(bson.D{{Key: "_id", Value: 1}})).Decode(&last)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return 0, fmt.Errorf("store: UM feed: %w", err)
	}
	return last.Seq, nil
}

// Append adds ev to the feed as number *last+1, unless an event with its
// id is in the feed already; it returns the event's number and moves
// *last on. Replaying it is safe: the unique index on the event id keeps
// one number per event, and a number taken meanwhile (another writer whose
// lease ran out) is skipped.
func (f *UMFeed) Append(ctx context.Context, ev *UMEvent, last *int64) (int64, error) {
	const tries = 20
	for range tries {
		seq := *last + 1
		_, err := f.feed.InsertOne(ctx, FeedEvent{Seq: seq, UMEvent: *ev})
		if err == nil {
			*last = seq
			return seq, nil
		}
		if !isDuplicate(err) {
			return 0, fmt.Errorf("store: UM feed append: %w", err)
		}
		var have FeedEvent
		switch err := f.feed.FindOne(ctx, bson.D{{Key: "id", Value: ev.ID}}).Decode(&have); {
		case err == nil:
			return have.Seq, nil
		case !errors.Is(err, mongo.ErrNoDocuments):
			return 0, fmt.Errorf("store: UM feed: %w", err)
		}
		if *last, err = f.LastSeq(ctx); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("store: UM feed: no free number for %s after %d tries", ev.ID, tries)
}

// After returns up to n feed events numbered after seq, in order, read
// as one range of _id (the embedded engine pushes down only a lookup by
// string _id, so it scans the feed once per call: one scan a page, not
// one an event). The feed has no gaps, so the first missing number ends
// the page.
func (f *UMFeed) After(ctx context.Context, seq int64, n int) ([]FeedEvent, error) {
	out := []FeedEvent{}
	if n <= 0 {
		return out, nil
	}
	cur, err := f.feed.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: seq}, {Key: "$lte", Value: seq + int64(n)}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(n)))
	if err != nil {
		return nil, fmt.Errorf("store: UM feed: %w", err)
	}
	var page []FeedEvent
	if err := cur.All(ctx, &page); err != nil {
		return nil, fmt.Errorf("store: UM feed: %w", err)
	}
	for i, ev := range page {
		if ev.Seq != seq+int64(i)+1 {
			break
		}
		out = append(out, ev)
	}
	return out, nil
}

// SeqOf is the sequence number of the event with id; ErrNotFound when the
// feed does not hold it (yet).
func (f *UMFeed) SeqOf(ctx context.Context, id string) (int64, error) {
	var ev FeedEvent
	err := f.feed.FindOne(ctx, bson.D{{Key: "id", Value: id}}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Decode(&ev)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("store: UM feed: %w", err)
	}
	return ev.Seq, nil
}

// Cursor loads a payer client's webhook cursor (a new one at 0 when none).
func (f *UMFeed) Cursor(ctx context.Context, client string) (*UMCursor, error) {
	c, err := byID[UMCursor](ctx, f.cursors, client, "UM cursor")
	if errors.Is(err, ErrNotFound) {
		return &UMCursor{ID: client}, nil
	}
	return c, err
}

// SaveCursor writes a webhook cursor. Call it only while holding the
// client's webhook lease.
func (f *UMFeed) SaveCursor(ctx context.Context, c *UMCursor) error {
	_, err := f.cursors.ReplaceOne(ctx, bson.D{{Key: "_id", Value: c.ID}}, c, options.Replace().SetUpsert(true))
	if err != nil && !isDuplicate(err) {
		return fmt.Errorf("store: save UM cursor: %w", err)
	}
	return nil
}

// PendedDueBy lists the heads of pended chains whose decision deadline is
// at or before t, earliest first (for the deadline-approaching scan; a
// scan of the heads on the embedded engine).
func (s *Store) PendedDueBy(ctx context.Context, t time.Time) ([]*Authorization, error) {
	cur, err := s.authorizations.Find(ctx,
		bson.D{{Key: "status", Value: "pended"}, {Key: "dueAt", Value: bson.D{{Key: "$lte", Value: t}}}},
		options.Find().SetSort(bson.D{{Key: "dueAt", Value: 1}, {Key: "_id", Value: 1}}).
			SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "dueAt", Value: 1}, {Key: "umEvents", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("store: pended due: %w", err)
	}
	var out []*Authorization
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: pended due: %w", err)
	}
	return out, nil
}
