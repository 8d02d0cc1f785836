package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// How authorizations are kept
//
// The embedded engine (FerretDB v1 on SQLite) has no transactions, pushes
// down only filters that are exactly {_id: <string>} (anything else scans
// the whole collection), and does not make a conditional update such as
// {_id, version: n} atomic under concurrency. Only an insert under a unique
// _id is. So every change of a chain is an insert:
//
//   - revisions holds each version of a chain under _id "<id>@<version>".
//     Inserting version n+1 is the compare-and-swap: of two writers that
//     read version n, exactly one inserts n+1; the other gets ErrConflict,
//     reads again and redoes its change. A revision is never changed.
//   - authorizations holds the head: a copy of the latest revision without
//     its bulky fields (response bodies, echoed resources, the latest
//     Claim and its items' JSON: most of a chain's bytes, which no scan
//     reads), written after the revision (by _id). A reader takes the
//     version from the head, loads that revision and rolls forward past a
//     stale head by probing "<id>@<version+1>", so a crash between the two
//     writes loses nothing. Scans (review queue, metrics) read heads.
//   - a revision and a request Bundle as received are stored deflated
//     (deflate.go): a revision in about a sixth of its bytes, a request
//     Bundle in about a quarter.
//   - keys maps what clients find chains by (submission keys, Claim
//     identifiers and fullUrls) to chain ids; each submission key also
//     holds the chain's patient member ids, for $inquire (chains written
//     before it did have one document per member and chain in members,
//     still read while any exists), and schedule lists chains a delayed
//     rule will finish. Both are
//     derived from the chain, written idempotently before its revision, and
//     only ever lead a reader to a chain it then loads and checks.

// revision is a stored version of a chain: the chain as one BSON value,
// deflated (deflate.go), since nothing filters on a revision's fields.
// Revisions written before 2026-12-07 hold the chain's fields in Doc.
type revision struct {
	ID  string         `bson:"_id"`
	Z   []byte         `bson:"z,omitempty"`
	Doc *Authorization `bson:"doc,omitempty"`
}

func newRevision(a *Authorization) (*revision, error) {
	z, err := deflateBSON(a)
	if err != nil {
		return nil, fmt.Errorf("store: revision %d of %s: %w", a.Version, a.ID, err)
	}
	return &revision{ID: revisionID(a.ID, a.Version), Z: z}, nil
}

// chain is the stored version in either form. A revision that is neither,
// or that holds another version than its _id names, is an error, so that a
// form this code does not know fails instead of being read as empty.
func (r *revision) chain(version int) (Authorization, error) {
	var a Authorization
	switch {
	case r.Z != nil:
		if err := inflateBSON(r.Z, &a); err != nil {
			return a, fmt.Errorf("store: revision %s: %w", r.ID, err)
		}
	case r.Doc != nil:
		a = *r.Doc
	default:
		return a, fmt.Errorf("store: revision %s is in a form this release does not read", r.ID)
	}
	if a.Version != version {
		return a, fmt.Errorf("store: revision %s holds version %d", r.ID, a.Version)
	}
	return a, nil
}

// bundleDoc is a stored RequestBundle: the body deflated (deflate.go).
// Bodies written before 2026-12-07 are in Body.
type bundleDoc struct {
	RequestBundle `bson:",inline"`
	Z             []byte `bson:"z,omitempty"`
}

type chainKey struct {
	ID    string    `bson:"_id"`
	Auth  string    `bson:"auth"`
	Since time.Time `bson:"since"`
	// Members, on a submission key, are the chain's member ids after that
	// submission: what AuthorizationsByMember finds chains by.
	Members []string `bson:"members,omitempty"`
}

// memberKey is an entry of the members collection, where chains written
// before submission keys carried their member ids were found by member.
type memberKey struct {
	ID     string `bson:"_id"`
	Member string `bson:"member"`
	Auth   string `bson:"auth"`
}

type scheduled struct {
	ID      string    `bson:"_id"`
	At      time.Time `bson:"at"`
	Version int       `bson:"version"`
}

func revisionID(id string, version int) string { return fmt.Sprintf("%s@%08d", id, version) }

func (s *Store) ensureIndexes(ctx context.Context) error {
	idx := []struct {
		c    *mongo.Collection
		keys bson.D
	}{
		// For a real MongoDB: the embedded engine scans regardless, and
		// createIndexes makes none there.
		{s.authorizations, bson.D{{Key: "status", Value: 1}, {Key: "dueAt", Value: 1}}},
		{s.authorizations, bson.D{{Key: "undispatched", Value: 1}}},
		{s.members, bson.D{{Key: "member", Value: 1}}},
		{s.keys, bson.D{{Key: "members", Value: 1}}},
		{s.schedule, bson.D{{Key: "at", Value: 1}}},
		{s.outbox, bson.D{{Key: "created", Value: 1}}},
	}
	for _, i := range idx {
		if err := s.createIndexes(ctx, i.c, mongo.IndexModel{Keys: i.keys}); err != nil {
			return err
		}
	}
	return nil
}

// SaveRequestBundle stores a request body under its submission key. Saving
// the same key again is a no-op, so a retried request can replay it.
func (s *Store) SaveRequestBundle(ctx context.Context, b *RequestBundle) error {
	doc := &bundleDoc{RequestBundle: *b, Z: deflate([]byte(b.Body))}
	doc.Body = ""
	err := s.insert(ctx, s.bundles, doc)
	if err != nil && !isDuplicate(err) {
		return fmt.Errorf("store: save request bundle: %w", err)
	}
	return nil
}

// RequestBundle loads a stored request body.
func (s *Store) RequestBundle(ctx context.Context, key string) (*RequestBundle, error) {
	d, err := byID[bundleDoc](ctx, s.bundles, key, "request bundle")
	if err != nil {
		return nil, err
	}
	b := &d.RequestBundle
	if d.Z != nil {
		body, err := inflate(d.Z)
		if err != nil {
			return nil, fmt.Errorf("store: request bundle %s: %w", key, err)
		}
		b.Body = string(body)
	}
	return b, nil
}

// CreateAuthorization stores a new chain at version 1. ErrDuplicate means a
// chain with that ID exists already: the same submission was stored before.
func (s *Store) CreateAuthorization(ctx context.Context, a *Authorization) error {
	a.Version = 1
	return s.commit(ctx, a, ErrDuplicate)
}

// UpdateAuthorization stores the next version of a chain read at
// a.Version. ErrConflict means another writer stored that version first:
// read the chain again and redo the change.
func (s *Store) UpdateAuthorization(ctx context.Context, a *Authorization) error {
	prev := a.Version
	a.Version = prev + 1
	if err := s.commit(ctx, a, ErrConflict); err != nil {
		a.Version = prev
		return err
	}
	return nil
}

// commit writes the derived index entries, then the revision (the atomic
// step), then the head. Inserts go through group commit (group.go): the
// revision insert is still a single-document insert under a unique _id.
func (s *Store) commit(ctx context.Context, a *Authorization, lost error) error {
	if err := s.writeKeys(ctx, a); err != nil {
		return err
	}
	rev, err := newRevision(a)
	if err != nil {
		return err
	}
	if err := s.insert(ctx, s.revisions, rev); err != nil {
		if isDuplicate(err) {
			return lost
		}
		return fmt.Errorf("store: write revision: %w", err)
	}
	s.writeHead(ctx, a)
	return nil
}

// writeHead copies a revision to the head unless the head is newer. The
// filter is {_id} alone — the only filter the embedded engine does not
// answer by scanning the collection — so the version check is a read
// before the write: two writers finishing out of order can still leave an
// older head, which the next reader rolls forward and repairs. A failure
// likewise only leaves the head stale.
func (s *Store) writeHead(ctx context.Context, a *Authorization) {
	if a.Version == 1 {
		// A new chain has no head yet: insert it. A duplicate means a
		// head exists (from an earlier attempt or a newer version); fall
		// through to the version check.
		err := s.insert(ctx, s.authorizations, headOf(a))
		if err == nil {
			return
		}
		if !isDuplicate(err) {
			s.log.WarnContext(ctx, "store: head not written; readers will roll forward", "authorization", a.ID, "err", err)
			return
		}
	}
	var cur struct {
		Version int `bson:"version"`
	}
	err := s.authorizations.FindOne(ctx, bson.D{{Key: "_id", Value: a.ID}},
		options.FindOne().SetProjection(bson.D{{Key: "version", Value: 1}})).Decode(&cur)
	if err == nil && cur.Version >= a.Version {
		return
	}
	_, err = s.authorizations.ReplaceOne(ctx, bson.D{{Key: "_id", Value: a.ID}}, headOf(a), options.Replace().SetUpsert(true))
	if err != nil && !isDuplicate(err) {
		s.log.WarnContext(ctx, "store: head not updated; readers will roll forward", "authorization", a.ID, "err", err)
	}
}

// headOf is the head document of a revision: the revision without the
// fields only a loaded chain needs (the Claim items' JSON among them).
func headOf(a *Authorization) *Authorization {
	h := *a
	h.Responses, h.Echo, h.LatestClaim = nil, nil, ""
	if a.Items != nil {
		h.Items = make([]Item, len(a.Items))
		for i, it := range a.Items {
			it.ItemJSON = ""
			h.Items[i] = it
		}
	}
	return &h
}

// writeKeys records, idempotently, how the chain is found again: the
// submission keys (with the chain's member ids), the Claim keys, the
// outbox entry of its newest event, its schedule entry and its deadline
// watch entry (duewatch.go), all in parallel.
//
// The submission keys of a new chain are simply inserted, together with the concurrent requests' (group commit,
// group.go): they are derived from the chain, so an existing one already
// says the same and a duplicate is success. A new chain is the newest for
// each of its Claim keys, so they are made to lead to it whatever they led
// to before: one unordered bulk of upserts by _id (one command, no read).
// Every entry of a later version is read first: an entry that already leads to this
// chain is left alone, a Claim key that leads to another chain is moved
// here (the newest chain for a reused key, as before), a missing one is
// inserted. Reading first keeps the (rare) duplicates out of the grouped
// inserts, where one would make FerretDB retry the whole batch one
// document at a time. A new chain with no delayed rule has no schedule
// entry to remove (a stale one would only lead the finisher to a chain it
// loads and checks), so none is written.
func (s *Store) writeKeys(ctx context.Context, a *Authorization) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	do := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	fresh := a.Version == 1
	var subs []any
	for _, k := range a.SubmissionKeys {
		// Member ids only change with a submission, so the newest
		// submission key holds them all.
		doc := chainKey{ID: submissionKeyID(a.Tenant, k), Auth: a.ID, Since: a.Updated, Members: a.MemberIDs}
		if fresh {
			subs = append(subs, doc)
		} else {
			do(func() error { return s.ensureKey(ctx, s.keys, doc.ID, a.ID, doc, false) })
		}
	}
	var moves []mongo.WriteModel
	for _, k := range a.ClaimKeys {
		doc := chainKey{ID: claimKeyID(a.Tenant, k), Auth: a.ID, Since: a.Updated}
		if fresh {
			moves = append(moves, mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: doc.ID}}).
				SetReplacement(doc).SetUpsert(true))
		} else {
			do(func() error { return s.ensureKey(ctx, s.keys, doc.ID, a.ID, doc, true) })
		}
	}
	if len(moves) > 0 {
		do(func() error {
			_, err := s.keys.BulkWrite(ctx, moves, options.BulkWrite().SetOrdered(false))
			if err != nil && !onlyDuplicates(err) {
				return fmt.Errorf("store: write keys: %w", err)
			}
			return nil
		})
	}
	for _, g := range []struct {
		c    *mongo.Collection
		docs []any
	}{{s.keys, subs}} {
		if len(g.docs) == 0 {
			continue
		}
		do(func() error {
			if err := s.insert(ctx, g.c, g.docs...); err != nil && !isDuplicate(err) {
				return fmt.Errorf("store: write %s: %w", g.c.Name(), err)
			}
			return nil
		})
	}
	do(func() error { return s.writeDueWatch(ctx, a) })
	do(func() error {
		if n := len(a.Events); n > 0 {
			ev := a.Events[n-1]
			id := fmt.Sprintf("%s#%08d", a.ID, ev.Number)
			_, err := s.outbox.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}},
				outboxEntry{ID: id, Auth: a.ID, Created: ev.Created}, options.Replace().SetUpsert(true))
			if err != nil && !isDuplicate(err) {
				return fmt.Errorf("store: write outbox: %w", err)
			}
		}
		if err := s.writeUMOutbox(ctx, a); err != nil {
			return err
		}
		if fresh && a.NextAuto.IsZero() {
			return nil
		}
		return s.SyncSchedule(ctx, a)
	})
	wg.Wait()
	return errors.Join(errs...)
}

// onlyDuplicates reports whether err is a duplicate-key error, or a bulk
// write's error whose every write failed on a duplicate key (an upsert
// that raced another writer's insert of the same _id: that writer won).
func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) {
		return isDuplicate(err)
	}
	if bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}

// ensureKey makes the entry id of c lead to chain auth: left alone when it
// does, inserted when missing, and — when movable — replaced when it leads
// to another chain. Every access is by _id.
func (s *Store) ensureKey(ctx context.Context, c *mongo.Collection, id, auth string, doc any, movable bool) error {
	var cur struct {
		Auth string `bson:"auth"`
	}
	err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}, options.FindOne().SetProjection(bson.D{{Key: "auth", Value: 1}})).Decode(&cur)
	switch {
	case err == nil && (cur.Auth == auth || !movable):
		return nil
	case err == nil:
	case errors.Is(err, mongo.ErrNoDocuments):
		err = s.insert(ctx, c, doc)
		if err == nil || (isDuplicate(err) && !movable) {
			return nil
		}
		if !isDuplicate(err) {
			return fmt.Errorf("store: write %s: %w", c.Name(), err)
		}
	default:
		return fmt.Errorf("store: read %s: %w", c.Name(), err)
	}
	_, err = c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, doc, options.Replace().SetUpsert(true))
	if err != nil && !isDuplicate(err) {
		return fmt.Errorf("store: write %s: %w", c.Name(), err)
	}
	return nil
}

// outboxEntry says a chain has a notification event (from Created on).
// It is written before the revision that holds the event, so no event is
// ever missing from the outbox; an entry whose revision lost its race
// leads the dispatcher to a chain without that event, which it skips.
type outboxEntry struct {
	ID      string    `bson:"_id"`
	Auth    string    `bson:"auth"`
	Created time.Time `bson:"created"`
}

// ChainsWithEvents returns the latest version of every chain with an
// event created at or after since (every chain with events when since is
// zero). It scans the outbox, which holds one small entry per event.
func (s *Store) ChainsWithEvents(ctx context.Context, since time.Time) ([]Authorization, error) {
	f := bson.D{}
	if !since.IsZero() {
		f = bson.D{{Key: "created", Value: bson.D{{Key: "$gte", Value: since}}}}
	}
	cur, err := s.outbox.Find(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("store: outbox: %w", err)
	}
	var entries []outboxEntry
	if err := cur.All(ctx, &entries); err != nil {
		return nil, fmt.Errorf("store: outbox: %w", err)
	}
	seen := map[string]bool{}
	var out []Authorization
	for _, e := range entries {
		if seen[e.Auth] {
			continue
		}
		seen[e.Auth] = true
		a, err := s.latest(ctx, e.Auth)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *a)
	}
	return out, nil
}

// SyncSchedule makes the schedule entry of a chain match its NextAuto.
func (s *Store) SyncSchedule(ctx context.Context, a *Authorization) error {
	if a.NextAuto.IsZero() {
		_, err := s.schedule.DeleteOne(ctx, bson.D{{Key: "_id", Value: a.ID}})
		if err != nil {
			return fmt.Errorf("store: unschedule: %w", err)
		}
		return nil
	}
	_, err := s.schedule.ReplaceOne(ctx, bson.D{{Key: "_id", Value: a.ID}},
		scheduled{ID: a.ID, At: a.NextAuto, Version: a.Version}, options.Replace().SetUpsert(true))
	if err != nil && !isDuplicate(err) {
		return fmt.Errorf("store: schedule: %w", err)
	}
	return nil
}

func submissionKeyID(tenant, key string) string { return "sub|" + tenant + "|" + key }
func claimKeyID(tenant, key string) string      { return "claim|" + tenant + "|" + key }

// Authorization loads the latest version of a chain within a tenant (""
// = any tenant).
func (s *Store) Authorization(ctx context.Context, tenant, id string) (*Authorization, error) {
	a, err := s.latest(ctx, id)
	if err != nil {
		return nil, err
	}
	if tenant != "" && a.Tenant != tenant {
		return nil, ErrNotFound
	}
	return a, nil
}

// latest reads the version the head names, loads that revision and rolls
// forward over newer ones, repairing the head when it was stale.
func (s *Store) latest(ctx context.Context, id string) (*Authorization, error) {
	var head struct {
		Version int `bson:"version"`
	}
	err := s.authorizations.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: "version", Value: 1}})).Decode(&head)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		// the first revision may exist without a head
	case err != nil:
		return nil, fmt.Errorf("store: load authorization: %w", err)
	}
	var a Authorization
	if head.Version > 0 {
		var r revision
		err := s.revisions.FindOne(ctx, bson.D{{Key: "_id", Value: revisionID(id, head.Version)}}).Decode(&r)
		if err != nil {
			return nil, fmt.Errorf("store: load revision %d of %s named by its head: %w", head.Version, id, err)
		}
		if a, err = r.chain(head.Version); err != nil {
			return nil, err
		}
	}
	stale := false
	for {
		var r revision
		err := s.revisions.FindOne(ctx, bson.D{{Key: "_id", Value: revisionID(id, a.Version+1)}}).Decode(&r)
		if errors.Is(err, mongo.ErrNoDocuments) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("store: load revision: %w", err)
		}
		if a, err = r.chain(a.Version + 1); err != nil {
			return nil, err
		}
		stale = true
	}
	if a.Version == 0 {
		return nil, ErrNotFound
	}
	if stale {
		s.writeHead(ctx, &a)
	}
	return &a, nil
}

// AuthorizationBySubmission finds the chain a submission key belongs to.
func (s *Store) AuthorizationBySubmission(ctx context.Context, tenant, key string) (*Authorization, error) {
	return s.byKey(ctx, tenant, submissionKeyID(tenant, key))
}

// AuthorizationByClaimKey finds the chain holding the first of keys that
// any chain holds (the newest chain for a key reused across requests).
func (s *Store) AuthorizationByClaimKey(ctx context.Context, tenant string, keys []string) (*Authorization, error) {
	for _, k := range keys {
		a, err := s.byKey(ctx, tenant, claimKeyID(tenant, k))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		return a, err
	}
	return nil, ErrNotFound
}

func (s *Store) byKey(ctx context.Context, tenant, id string) (*Authorization, error) {
	var k chainKey
	err := s.keys.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&k)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: load key: %w", err)
	}
	return s.Authorization(ctx, tenant, k.Auth)
}

// AuthorizationsByMember finds chains of any tenant whose patient carries one
// of the member identifiers, newest first. PAS inquiries may come from
// systems other than the submitter (spec-52); callers must still require a
// provider match (spec-53) before showing anything.
func (s *Store) AuthorizationsByMember(ctx context.Context, memberIDs []string, limit int64) ([]*Authorization, error) {
	if len(memberIDs) == 0 {
		return nil, nil
	}
	cur, err := s.keys.Find(ctx, bson.D{{Key: "members", Value: bson.D{{Key: "$in", Value: memberIDs}}}},
		options.Find().SetProjection(bson.D{{Key: "auth", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("store: find by member: %w", err)
	}
	var keys []memberKey
	if err := cur.All(ctx, &keys); err != nil {
		return nil, fmt.Errorf("store: find by member: %w", err)
	}
	if s.legacyMembers {
		cur, err := s.members.Find(ctx, bson.D{{Key: "member", Value: bson.D{{Key: "$in", Value: memberIDs}}}})
		if err != nil {
			return nil, fmt.Errorf("store: find by member: %w", err)
		}
		var old []memberKey
		if err := cur.All(ctx, &old); err != nil {
			return nil, fmt.Errorf("store: find by member: %w", err)
		}
		keys = append(keys, old...)
	}
	seen := map[string]bool{}
	var out []*Authorization
	for _, k := range keys {
		if seen[k.Auth] {
			continue
		}
		seen[k.Auth] = true
		a, err := s.latest(ctx, k.Auth)
		if errors.Is(err, ErrNotFound) {
			continue // its first revision was never written
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	if int64(len(out)) > limit {
		out = out[:limit]
	}
	return out, nil
}

// DueAutomaticDecisions returns chains whose delayed rules are due at now.
// An entry may be stale; callers load the chain and check (SyncSchedule
// puts the entry right).
func (s *Store) DueAutomaticDecisions(ctx context.Context, now time.Time, limit int64) ([]*Authorization, error) {
	cur, err := s.schedule.Find(ctx, bson.D{{Key: "at", Value: bson.D{{Key: "$lte", Value: now}}}},
		options.Find().SetSort(bson.D{{Key: "at", Value: 1}}).SetLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("store: due decisions: %w", err)
	}
	var due []scheduled
	if err := cur.All(ctx, &due); err != nil {
		return nil, fmt.Errorf("store: due decisions: %w", err)
	}
	var out []*Authorization
	for _, d := range due {
		a, err := s.latest(ctx, d.ID)
		if errors.Is(err, ErrNotFound) {
			_, _ = s.schedule.DeleteOne(ctx, bson.D{{Key: "_id", Value: d.ID}})
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// ReviewFilter selects chains for the review queue. Every field left
// empty matches all.
type ReviewFilter struct {
	// Status is pended, complete, cancelled, or "" for all.
	Status string
	// Test is which chains of test data to list: "" leaves them out,
	// "include" lists them with the others, "only" lists nothing else.
	Test   string
	Tenant string
	Limit  int64
	// Sort is "due" (default: earliest deadline first) or "age" (oldest first).
	Sort string

	// MemberID matches any of the patient's member ids exactly.
	MemberID string
	// Patient matches the patient's name, ignoring case, anywhere in it.
	Patient string
	// NPI matches any provider NPI of the request exactly.
	NPI string
	// Code matches any item's code exactly.
	Code string
	// State is a review state (new, in-review, awaiting-info, reopened,
	// decided, cancelled).
	State string
	// Expedited, when set, keeps only expedited (true) or standard requests.
	Expedited *bool
	// Assignee is an assignee key, "unassigned" or "assigned".
	Assignee string
	// Overdue keeps pended requests whose deadline passed by OverdueAt
	// (pas.Queue sets it to its clock).
	Overdue   bool
	OverdueAt time.Time
	// Eligibility is eligible, not-eligible (any other result) or
	// unchecked (no result recorded).
	Eligibility string
}

// query is the filter as a MongoDB query on the heads.
func (f ReviewFilter) query() bson.D {
	q := bson.D{}
	add := func(k string, v any) { q = append(q, bson.E{Key: k, Value: v}) }
	if f.Status != "" {
		add("status", f.Status)
	}
	if f.Tenant != "" {
		add("tenant", f.Tenant)
	}
	switch f.Test {
	case "include":
	case "only":
		add("test", true)
	default:
		add("test", bson.D{{Key: "$ne", Value: true}})
	}
	if f.MemberID != "" {
		add("memberIds", f.MemberID)
	}
	if f.Patient != "" {
		add("summary.patientName", bson.D{{Key: "$regex", Value: regexp.QuoteMeta(f.Patient)}, {Key: "$options", Value: "i"}})
	}
	if f.NPI != "" {
		add("providerNpis", f.NPI)
	}
	if f.Code != "" {
		add("items.code", f.Code)
	}
	if f.State != "" {
		add("state", f.State)
	}
	if f.Expedited != nil {
		add("expedited", *f.Expedited)
	}
	switch f.Assignee {
	case "":
	case "unassigned":
		add("assignee", bson.D{{Key: "$exists", Value: false}})
	case "assigned":
		add("assignee", bson.D{{Key: "$exists", Value: true}})
	default:
		add("assignee.key", f.Assignee)
	}
	if f.Overdue {
		if f.Status == "" {
			add("status", "pended")
		}
		add("dueAt", bson.D{{Key: "$lt", Value: f.OverdueAt}})
	}
	switch f.Eligibility {
	case "eligible":
		add("eligibility.status", "eligible")
	case "not-eligible":
		add("eligibility", bson.D{{Key: "$exists", Value: true}})
		add("eligibility.status", bson.D{{Key: "$ne", Value: "eligible"}})
	case "unchecked":
		add("eligibility", bson.D{{Key: "$exists", Value: false}})
	}
	return q
}

// ReviewQueue lists chains for reviewers, from the heads.
func (s *Store) ReviewQueue(ctx context.Context, f ReviewFilter) ([]*Authorization, error) {
	sort := bson.D{{Key: "dueAt", Value: 1}, {Key: "_id", Value: 1}}
	if f.Sort == "age" {
		sort = bson.D{{Key: "created", Value: 1}, {Key: "_id", Value: 1}}
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	cur, err := s.authorizations.Find(ctx, f.query(), options.Find().SetSort(sort).SetLimit(f.Limit).
		SetProjection(bson.D{{Key: "responses", Value: 0}, {Key: "echo", Value: 0}, {Key: "latestClaim", Value: 0},
			{Key: "items.itemJson", Value: 0}})) // heads written before 2026-12-07 carry it
	if err != nil {
		return nil, fmt.Errorf("store: review queue: %w", err)
	}
	var out []*Authorization
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: review queue: %w", err)
	}
	return out, nil
}

// Sibling is what the duplicate check reads of another chain.
type Sibling struct {
	ID        string    `bson:"_id"`
	Created   time.Time `bson:"created"`
	Status    string    `bson:"status"`
	Test      bool      `bson:"test"`
	MemberIDs []string  `bson:"memberIds"`
	Items     []struct {
		System string `bson:"system"`
		Code   string `bson:"code"`
	} `bson:"items"`
}

// Siblings lists the chains received in [from, to] with the fields the
// duplicate check compares (member ids and item codes), from the heads.
// When memberIDs is given only chains of those members are read.
func (s *Store) Siblings(ctx context.Context, from, to time.Time, memberIDs []string) ([]Sibling, error) {
	q := bson.D{{Key: "created", Value: bson.D{{Key: "$gte", Value: from}, {Key: "$lte", Value: to}}}}
	if len(memberIDs) > 0 {
		q = append(q, bson.E{Key: "memberIds", Value: bson.D{{Key: "$in", Value: memberIDs}}})
	}
	cur, err := s.authorizations.Find(ctx, q, options.Find().SetProjection(bson.D{
		{Key: "created", Value: 1}, {Key: "status", Value: 1}, {Key: "test", Value: 1},
		{Key: "memberIds", Value: 1}, {Key: "items.system", Value: 1}, {Key: "items.code", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("store: siblings: %w", err)
	}
	var out []Sibling
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: siblings: %w", err)
	}
	return out, nil
}
