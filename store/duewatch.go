package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Deadline watch
//
// The deadline-approaching sweep (pas.MarkDeadlines) runs every minute.
// Asking the authorizations for pended chains due soon is one indexed
// query on MongoDB, but the embedded engine answers every filter but
// {_id} by decoding the whole collection: a sweep that grew with every
// request ever made (measured: p99 latency rising at each minute mark of a
// soak, to 7.8 s after ten minutes). So the sweep reads a small collection
// instead, dueWatch: one entry per version of a chain that was written
// pended without the deadline-approaching event of its deadline.
//
// Without multi-document transactions: writeKeys inserts the entry of a
// version before the revision is written (group commit), so no committed
// pended version lacks one. Entries are immutable (the _id names the
// version) and only the sweep deletes them, once it has seen the chain
// move on: a newer version (which, if it still needs watching, has its
// own entry), the event recorded, or the chain no longer pended. The write
// path never deletes, so a writer that loses the revision race cannot
// remove an entry the winner needs. An entry whose version never got
// written (a crash, a lost race) is dropped an hour after it was made.
// Chains written by an older Priora have no entries: BackfillDueWatch,
// which the sweep runs when a process starts and every few hours, adds
// them from one scan of the heads.

const collDueWatch = "dueWatch"

// DueWatch is one entry of the deadline watch.
type DueWatch struct {
	ID      string    `bson:"_id"` // "<chain>#<version>"
	Auth    string    `bson:"auth"`
	Version int       `bson:"version"`
	DueAt   time.Time `bson:"dueAt"`
	Created time.Time `bson:"created"`
}

// NeedsDueWatch reports whether the deadline sweep must still look at a
// chain: pended, with a deadline not yet announced.
func NeedsDueWatch(a *Authorization) bool {
	return a.Status == "pended" && !a.DueAt.IsZero() && !a.HasUMEvent(UMDeadlineApproaching, a.DueAt)
}

func dueWatchOf(a *Authorization, now time.Time) *DueWatch {
	return &DueWatch{ID: a.ID + "#" + strconv.Itoa(a.Version), Auth: a.ID, Version: a.Version, DueAt: a.DueAt, Created: now}
}

// writeDueWatch inserts the watch entry of the version a is about to be
// written as, when it needs one (with the concurrent inserts: group
// commit). An existing entry is the same entry.
func (s *Store) writeDueWatch(ctx context.Context, a *Authorization) error {
	if !NeedsDueWatch(a) {
		return nil
	}
	// Created is the chain's own clock (the sweep compares it with that
	// clock's now), not this process's.
	if err := s.insert(ctx, s.db.Collection(collDueWatch), dueWatchOf(a, a.Updated)); err != nil && !isDuplicate(err) {
		return fmt.Errorf("store: write deadline watch: %w", err)
	}
	return nil
}

// DueWatches returns every watch entry (the collection holds only the
// pended versions of the last deadlines' worth of requests).
func (s *Store) DueWatches(ctx context.Context) ([]DueWatch, error) {
	cur, err := s.db.Collection(collDueWatch).Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("store: deadline watch: %w", err)
	}
	var out []DueWatch
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: deadline watch: %w", err)
	}
	return out, nil
}

// DropDueWatch deletes watch entries by _id.
func (s *Store) DropDueWatch(ctx context.Context, ids ...string) error {
	for _, id := range ids {
		if _, err := s.db.Collection(collDueWatch).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
			return fmt.Errorf("store: drop deadline watch %s: %w", id, err)
		}
	}
	return nil
}

// BackfillDueWatch adds the watch entries of the pended chains that need
// one and have none (written by an older Priora), from one scan of the
// heads. It returns how many chains it looked at.
func (s *Store) BackfillDueWatch(ctx context.Context) (int, error) {
	cur, err := s.authorizations.Find(ctx, bson.D{{Key: "status", Value: "pended"}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "version", Value: 1}, {Key: "status", Value: 1},
			{Key: "dueAt", Value: 1}, {Key: "umEvents", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("store: deadline watch backfill: %w", err)
	}
	var heads []*Authorization
	if err := cur.All(ctx, &heads); err != nil {
		return 0, fmt.Errorf("store: deadline watch backfill: %w", err)
	}
	now := time.Now().UTC()
	var docs []any
	for _, a := range heads {
		if NeedsDueWatch(a) {
			docs = append(docs, dueWatchOf(a, now))
		}
	}
	if err := s.insertNew(ctx, s.db.Collection(collDueWatch), docs...); err != nil {
		return 0, fmt.Errorf("store: deadline watch backfill: %w", err)
	}
	return len(heads), nil
}
