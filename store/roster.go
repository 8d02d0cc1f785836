package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The member roster: whom the payer covers.
//
// roster holds one document per member, _id "system|value" of the member
// id (tenant-less: the roster is the payer's, not a submitter's), with the
// member's coverages inside, so a member and its coverages change in one
// atomic document write. rosterKeys maps what a request may name a member
// by other than its full id — the bare member id value ("v|<value>", a
// Coverage.subscriberId carries no system) and the subscriber id
// ("s|<subscriber id>", which finds a subscriber's dependents) — to member
// ids. Like the chains' keys (chains.go), they are derived, written
// idempotently with $addToSet before the member document, read by _id
// only, and only ever lead a reader to members it then loads and checks;
// a stale key (a member whose subscriber id changed) is filtered out there.
const (
	collRoster     = "roster"
	collRosterKeys = "rosterKeys"
)

// Member is one covered person, as the payer's roster has them.
type Member struct {
	// ID is "system|value" of MemberID; the document's _id.
	ID       string `bson:"_id" json:"id"`
	System   string `bson:"system,omitempty" json:"system,omitempty"`
	MemberID string `bson:"memberId" json:"memberId"`
	// SubscriberID is the subscriber's (policy holder's) id; the member's
	// own when Relationship is self.
	SubscriberID string `bson:"subscriberId,omitempty" json:"subscriberId,omitempty"`
	// Relationship to the subscriber (HL7 subscriber-relationship code:
	// self, spouse, child, parent, common, other, injured).
	Relationship string   `bson:"relationship,omitempty" json:"relationship,omitempty"`
	Family       string   `bson:"family,omitempty" json:"family,omitempty"`
	Given        []string `bson:"given,omitempty" json:"given,omitempty"`
	BirthDate    string   `bson:"birthDate,omitempty" json:"birthDate,omitempty"`
	Gender       string   `bson:"gender,omitempty" json:"gender,omitempty"`
	// Coverages are the member's coverages, past, present and future.
	Coverages []MemberCoverage `bson:"coverages" json:"coverages"`
	// Source is the roster import that last changed the member.
	Source  string `bson:"source,omitempty" json:"source,omitempty"`
	Updated string `bson:"updated,omitempty" json:"updated,omitempty"`
}

// MemberCoverage is one coverage of a member.
type MemberCoverage struct {
	// Key identifies the coverage within the member: the source
	// Coverage's identifier or id, else payer, plan and start date.
	Key         string `bson:"key" json:"key"`
	PayerSystem string `bson:"payerSystem,omitempty" json:"payerSystem,omitempty"`
	PayerID     string `bson:"payerId,omitempty" json:"payerId,omitempty"`
	PayerName   string `bson:"payerName,omitempty" json:"payerName,omitempty"`
	Plan        string `bson:"plan,omitempty" json:"plan,omitempty"`
	PlanName    string `bson:"planName,omitempty" json:"planName,omitempty"`
	Group       string `bson:"group,omitempty" json:"group,omitempty"`
	// ProductLine is the kind of coverage, e.g. Medicare Advantage,
	// Medicaid or commercial (Coverage.type).
	ProductLine string `bson:"productLine,omitempty" json:"productLine,omitempty"`
	Network     string `bson:"network,omitempty" json:"network,omitempty"`
	// Start and End bound the coverage (dates, inclusive; empty is open).
	Start string `bson:"start,omitempty" json:"start,omitempty"`
	End   string `bson:"end,omitempty" json:"end,omitempty"`
	// Status is the Coverage status: active, cancelled, draft or
	// entered-in-error. Only active coverage is ever in effect.
	Status string `bson:"status" json:"status"`
}

type rosterKey struct {
	ID      string   `bson:"_id"`
	Members []string `bson:"members"`
}

// Member loads a member by id ("system|value"), or returns ErrNotFound.
func (s *Store) Member(ctx context.Context, id string) (*Member, error) {
	return byID[Member](ctx, s.db.Collection(collRoster), id, "member")
}

// SaveMember writes a member document whole (an upsert by id: one atomic
// document write). Its lookup keys are written first, so a reader that
// finds the member by key never misses it.
func (s *Store) SaveMember(ctx context.Context, m *Member) error {
	keys := []string{"v|" + m.MemberID}
	if m.SubscriberID != "" {
		keys = append(keys, "s|"+m.SubscriberID)
	}
	for _, k := range keys {
		_, err := s.db.Collection(collRosterKeys).UpdateOne(ctx, bson.D{{Key: "_id", Value: k}},
			bson.D{{Key: "$addToSet", Value: bson.D{{Key: "members", Value: m.ID}}}}, options.UpdateOne().SetUpsert(true))
		if err != nil {
			return fmt.Errorf("store: save member key: %w", err)
		}
	}
	_, err := s.db.Collection(collRoster).ReplaceOne(ctx, bson.D{{Key: "_id", Value: m.ID}}, m, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("store: save member: %w", err)
	}
	return nil
}

// MembersByValue returns the members whose member id value is value, in
// any system.
func (s *Store) MembersByValue(ctx context.Context, value string) ([]*Member, error) {
	return s.membersByKey(ctx, "v|"+value)
}

// MembersBySubscriber returns the members whose subscriber id is id: the
// subscriber and their dependents.
func (s *Store) MembersBySubscriber(ctx context.Context, id string) ([]*Member, error) {
	ms, err := s.membersByKey(ctx, "s|"+id)
	out := ms[:0]
	for _, m := range ms {
		if m.SubscriberID == id {
			out = append(out, m)
		}
	}
	return out, err
}

func (s *Store) membersByKey(ctx context.Context, key string) ([]*Member, error) {
	k, err := byID[rosterKey](ctx, s.db.Collection(collRosterKeys), key, "member key")
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Member
	for _, id := range k.Members {
		m, err := s.Member(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // key written, member write lost: nothing to find
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// RosterEmpty reports whether the roster holds no member (reads at most
// one document).
func (s *Store) RosterEmpty(ctx context.Context) (bool, error) {
	err := s.db.Collection(collRoster).FindOne(ctx, bson.D{}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: roster: %w", err)
	}
	return false, nil
}

// Eligibility is the eligibility result kept on a chain for reviewers.
type Eligibility struct {
	// Mode in force: enforce or warn.
	Mode string `bson:"mode"`
	// Status: eligible, not-found, mismatch or no-coverage.
	Status string `bson:"status"`
	// Flagged marks a result reviewers must look at (warn mode, not eligible).
	Flagged      bool       `bson:"flagged,omitempty"`
	MemberID     string     `bson:"memberId,omitempty"`
	MatchedBy    string     `bson:"matchedBy,omitempty"`
	Relationship string     `bson:"relationship,omitempty"`
	Name         string     `bson:"name,omitempty"`
	BirthDate    string     `bson:"birthDate,omitempty"`
	Payer        string     `bson:"payer,omitempty"`
	Plan         string     `bson:"plan,omitempty"`
	PlanName     string     `bson:"planName,omitempty"`
	Group        string     `bson:"group,omitempty"`
	ProductLine  string     `bson:"productLine,omitempty"`
	Network      string     `bson:"network,omitempty"`
	Start        string     `bson:"start,omitempty"`
	End          string     `bson:"end,omitempty"`
	Mismatches   []Mismatch `bson:"mismatches,omitempty"`
	Reason       string     `bson:"reason,omitempty"`
}

// Mismatch is a demographic a request gives differently from the roster.
type Mismatch struct {
	Field  string `bson:"field" json:"field"` // name or birthDate
	Sent   string `bson:"sent" json:"sent"`
	OnFile string `bson:"onFile" json:"onFile"`
	Path   string `bson:"path,omitempty" json:"path,omitempty"`
}

// MembersByID loads members by id, several lookups at once (each by _id);
// ids with no member are absent from the answer.
func (s *Store) MembersByID(ctx context.Context, ids []string) (map[string]*Member, error) {
	return byIDs[Member](ctx, s.db.Collection(collRoster), ids, "member")
}

// byIDs loads documents by _id, up to eight lookups at once (each by _id,
// the one filter the embedded engine answers from an index); ids with no
// document are absent from the answer.
func byIDs[T any](ctx context.Context, c *mongo.Collection, ids []string, what string) (map[string]*T, error) {
	out := make(map[string]*T, len(ids))
	var mu sync.Mutex
	var firstErr error
	work := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < min(8, len(ids)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				v, err := byID[T](ctx, c, id, what)
				mu.Lock()
				switch {
				case err == nil:
					out[id] = v
				case !errors.Is(err, ErrNotFound) && firstErr == nil:
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		work <- id
	}
	close(work)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return out, firstErr
}

// SaveMembers writes many members: fresh ones (not stored before) with
// grouped inserts, changed ones each with one replace, and their lookup
// keys first. A fresh member someone else stored meanwhile is replaced.
func (s *Store) SaveMembers(ctx context.Context, fresh, changed []*Member) error {
	byKey := map[string][]string{}
	var order []string
	for _, list := range [][]*Member{fresh, changed} {
		for _, m := range list {
			ks := []string{"v|" + m.MemberID}
			if m.SubscriberID != "" {
				ks = append(ks, "s|"+m.SubscriberID)
			}
			for _, k := range ks {
				if _, ok := byKey[k]; !ok {
					order = append(order, k)
				}
				byKey[k] = append(byKey[k], m.ID)
			}
		}
	}
	keys := s.db.Collection(collRosterKeys)
	docs := make([]any, len(order))
	for i, k := range order {
		docs[i] = rosterKey{ID: k, Members: byKey[k]}
	}
	errs, err := s.insertEach(ctx, keys, docs...)
	if err != nil && errs == nil {
		return fmt.Errorf("store: save member keys: %w", err)
	}
	for i, e := range errs {
		if e == nil {
			continue
		}
		if !isDuplicate(e) {
			return fmt.Errorf("store: save member key: %w", e)
		}
		_, err := keys.UpdateOne(ctx, bson.D{{Key: "_id", Value: order[i]}},
			bson.D{{Key: "$addToSet", Value: bson.D{{Key: "members", Value: bson.D{{Key: "$each", Value: byKey[order[i]]}}}}}})
		if err != nil {
			return fmt.Errorf("store: save member key: %w", err)
		}
	}
	roster := s.db.Collection(collRoster)
	docs = make([]any, len(fresh))
	for i, m := range fresh {
		docs[i] = m
	}
	errs, err = s.insertEach(ctx, roster, docs...)
	if err != nil && errs == nil {
		return fmt.Errorf("store: save members: %w", err)
	}
	for i, e := range errs {
		switch {
		case e == nil:
		case isDuplicate(e):
			changed = append(changed, fresh[i])
		default:
			return fmt.Errorf("store: save member: %w", e)
		}
	}
	for _, m := range changed {
		if _, err := roster.ReplaceOne(ctx, bson.D{{Key: "_id", Value: m.ID}}, m, options.Replace().SetUpsert(true)); err != nil {
			return fmt.Errorf("store: save member: %w", err)
		}
	}
	return nil
}

// The import stage: what a roster import must remember about the entries
// it has read (a Patient for the Coverages that come after it, the person
// first imported under each member id), once the import's bounded memory
// is full. Each document is one key of one run, _id "<run>\x1f<key>", read
// by _id only; the run drops its documents when it ends, and a run that
// crashed leaves documents that the next import drops after a day.
const collImportStage = "importStage"

type stageDoc struct {
	ID  string    `bson:"_id"`
	Run string    `bson:"run"`
	V   []byte    `bson:"v"`
	At  time.Time `bson:"at"`
}

func stageID(run, key string) string { return run + "\x1f" + key }

// StagePut writes the entries of one import run (a later put of a key
// replaces its value).
func (s *Store) StagePut(ctx context.Context, run string, entries map[string][]byte, now time.Time) error {
	c := s.db.Collection(collImportStage)
	keys := make([]string, 0, len(entries))
	docs := make([]any, 0, len(entries))
	for k, v := range entries {
		keys = append(keys, k)
		docs = append(docs, stageDoc{ID: stageID(run, k), Run: run, V: v, At: now})
	}
	errs, err := s.insertEach(ctx, c, docs...)
	if err != nil && errs == nil {
		return fmt.Errorf("store: import stage: %w", err)
	}
	for i, e := range errs {
		switch {
		case e == nil:
		case isDuplicate(e):
			if _, err := c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: stageID(run, keys[i])}}, docs[i]); err != nil {
				return fmt.Errorf("store: import stage: %w", err)
			}
		default:
			return fmt.Errorf("store: import stage: %w", e)
		}
	}
	return nil
}

// StageGet reads keys of one import run, several lookups at once (each by
// _id); keys never put are absent from the answer.
func (s *Store) StageGet(ctx context.Context, run string, keys []string) (map[string][]byte, error) {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = stageID(run, k)
	}
	docs, err := byIDs[stageDoc](ctx, s.db.Collection(collImportStage), ids, "import stage entry")
	out := make(map[string][]byte, len(docs))
	for i, id := range ids {
		if d, ok := docs[id]; ok {
			out[keys[i]] = d.V
		}
	}
	return out, err
}

// StageDrop deletes a run's stage, and what crashed runs left before
// staleBefore. The documents are found by one scan and deleted one by one
// by _id, eight at a time: the embedded engine cannot delete more than
// about 32,000 documents in one statement, and answers by _id alone from
// an index.
func (s *Store) StageDrop(ctx context.Context, run string, staleBefore time.Time) error {
	c := s.db.Collection(collImportStage)
	cur, err := c.Find(ctx, bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "run", Value: run}},
		bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: staleBefore}}}},
	}}}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(1000))
	if err != nil {
		return fmt.Errorf("store: drop import stage: %w", err)
	}
	var ids []string
	for cur.Next(ctx) {
		var d struct {
			ID string `bson:"_id"`
		}
		if err := cur.Decode(&d); err != nil {
			cur.Close(ctx)
			return fmt.Errorf("store: drop import stage: %w", err)
		}
		ids = append(ids, d.ID)
	}
	if err := cur.Err(); err != nil {
		cur.Close(ctx)
		return fmt.Errorf("store: drop import stage: %w", err)
	}
	cur.Close(ctx)
	work := make(chan string)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				if _, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		work <- id
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return fmt.Errorf("store: drop import stage: %w", err)
	default:
	}
	return ctx.Err()
}

// CountImportStage counts the import stage's documents (for tests and
// diagnostics).
func (s *Store) CountImportStage(ctx context.Context) (int64, error) {
	return s.db.Collection(collImportStage).CountDocuments(ctx, bson.D{})
}
