package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/priora/priora/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// TestRevisionIsCompareAndSwap: of many writers that read the same version
// and write the next one at once, exactly one succeeds and the others are
// told to redo their change — on the embedded engine, whose conditional
// updates are not atomic, and through the grouped inserts.
func TestRevisionIsCompareAndSwap(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	a := &store.Authorization{ID: "PAcas", Tenant: "t1", Created: time.Now(), Status: "pended",
		SubmissionKeys: []string{"k1"}, ClaimKeys: []string{"url|http://x/Claim/1"}}
	if err := s.CreateAuthorization(ctx, a); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 5; round++ {
		base, err := s.Authorization(ctx, "t1", "PAcas")
		if err != nil {
			t.Fatal(err)
		}
		const writers = 12
		var wg sync.WaitGroup
		wins := make(chan int, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mine := *base
				mine.Status = fmt.Sprintf("writer-%d", w)
				switch err := s.UpdateAuthorization(ctx, &mine); {
				case err == nil:
					wins <- w
				case !errors.Is(err, store.ErrConflict):
					t.Errorf("writer %d: %v", w, err)
				}
			}()
		}
		wg.Wait()
		close(wins)
		var winners []int
		for w := range wins {
			winners = append(winners, w)
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d writers won, want exactly 1", round, len(winners))
		}
		got, err := s.Authorization(ctx, "t1", "PAcas")
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("writer-%d", winners[0]); got.Status != want || got.Version != base.Version+1 {
			t.Errorf("round %d: stored %q v%d, want the winner's %q v%d", round, got.Status, got.Version, want, base.Version+1)
		}
	}
	// A second create of the same chain is refused, not merged.
	if err := s.CreateAuthorization(ctx, &store.Authorization{ID: "PAcas", Tenant: "t1"}); !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("second create: %v, want ErrDuplicate", err)
	}
	// Lookups by key find the chain; another tenant's lookups do not.
	if got, err := s.AuthorizationBySubmission(ctx, "t1", "k1"); err != nil || got.ID != "PAcas" {
		t.Errorf("by submission: %v %v", got, err)
	}
	if _, err := s.AuthorizationByClaimKey(ctx, "t2", []string{"url|http://x/Claim/1"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("other tenant by claim key: %v, want ErrNotFound", err)
	}
	if _, err := s.Authorization(ctx, "t2", "PAcas"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("other tenant by id: %v, want ErrNotFound", err)
	}
}

// TestAuthorizationsByMember: chains are found by any of their member ids
// (held by their submission keys, the newest after an update), and chains
// an older Priora wrote, whose member ids only the members collection
// holds, still are.
func TestAuthorizationsByMember(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, store.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	a := &store.Authorization{ID: "PAnew", Tenant: "t1", Created: now, Updated: now, Status: "complete",
		SubmissionKeys: []string{"k1"}, MemberIDs: []string{"M1", "S1"}}
	if err := s.CreateAuthorization(ctx, a); err != nil {
		t.Fatal(err)
	}
	// An update brings a member id of its own.
	a.SubmissionKeys = append(a.SubmissionKeys, "k2")
	a.MemberIDs = append(a.MemberIDs, "M2")
	if err := s.UpdateAuthorization(ctx, a); err != nil {
		t.Fatal(err)
	}
	// As an older Priora left a chain: its member ids in members only.
	old := &store.Authorization{ID: "PAold", Tenant: "t1", Created: now.Add(-time.Hour), Updated: now, Status: "complete",
		SubmissionKeys: []string{"k0"}}
	if err := s.CreateAuthorization(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().Collection("members").InsertOne(ctx, bson.D{{Key: "_id", Value: "S1|PAold"}, {Key: "member", Value: "S1"}, {Key: "auth", Value: "PAold"}}); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	if s, err = store.Open(ctx, store.Options{DataDir: dir}); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	for _, tc := range []struct {
		ids  []string
		want []string
	}{
		{[]string{"M1"}, []string{"PAnew"}},
		{[]string{"M2"}, []string{"PAnew"}},
		{[]string{"S1"}, []string{"PAnew", "PAold"}},
		{[]string{"X", "M2", "S1"}, []string{"PAnew", "PAold"}},
		{[]string{"X"}, nil},
	} {
		got, err := s.AuthorizationsByMember(ctx, tc.ids, 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, a := range got {
			ids = append(ids, a.ID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(tc.want) {
			t.Errorf("members %v find %v, want %v", tc.ids, ids, tc.want)
		}
	}
}

// TestDeflatedForms: a chain and a request Bundle read back whole as
// written now (deflated) and as written before (the chain's fields in the
// revision document, the body as a string): through the chain loader,
// also rolling forward from one form to the other, the UM feed's read of a
// version's events, and the request Bundle lookup. The head keeps what
// scans read, not the items' JSON.
func TestDeflatedForms(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	db := s.DB()
	now := time.Now().UTC().Truncate(time.Millisecond)
	chain := func(id string) *store.Authorization {
		return &store.Authorization{ID: id, Tenant: "t1", Created: now, Status: "pended", DueAt: now.Add(72 * time.Hour),
			SubmissionKeys: []string{"sub-" + id}, ClaimKeys: []string{"claim-" + id}, MemberIDs: []string{"M1"},
			LatestClaim: `{"resourceType":"Claim"}`, Items: []store.Item{{Sequence: 1, Code: "27447", ItemJSON: `{"sequence":1}`}},
			UMEvents: []store.UMEvent{{ID: id + "-1", Number: 1, Kind: "submitted", Tenant: "t1", Authorization: id, At: now, Status: "pended"}}}
	}
	deflated := chain("PAnew")
	if err := s.CreateAuthorization(ctx, deflated); err != nil {
		t.Fatal(err)
	}
	var raw bson.M
	if err := db.Collection("revisions").FindOne(ctx, bson.D{{Key: "_id", Value: "PAnew@00000001"}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["z"].(bson.Binary); !ok || raw["doc"] != nil {
		t.Errorf("a new revision is stored as %v, want one deflated z field", raw)
	}
	var head struct {
		Items []bson.M `bson:"items"`
	}
	if err := db.Collection("authorizations").FindOne(ctx, bson.D{{Key: "_id", Value: "PAnew"}}).Decode(&head); err != nil {
		t.Fatal(err)
	}
	if len(head.Items) != 1 || head.Items[0]["code"] != "27447" || head.Items[0]["itemJson"] != "" {
		t.Errorf("head items %v: want the item's code and no JSON", head.Items)
	}
	// The form before: {_id, doc: <the chain's fields>}, and its head.
	old := chain("PAold")
	old.Version = 1
	if _, err := db.Collection("revisions").InsertOne(ctx, bson.D{{Key: "_id", Value: "PAold@00000001"}, {Key: "doc", Value: old}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("authorizations").InsertOne(ctx, old); err != nil {
		t.Fatal(err)
	}
	feed, err := s.UMFeed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []*store.Authorization{deflated, old} {
		got, err := s.Authorization(ctx, "t1", want.ID)
		if err != nil {
			t.Fatalf("%s: %v", want.ID, err)
		}
		if got.Version != 1 || got.Status != want.Status || !got.DueAt.Equal(want.DueAt) || got.LatestClaim != want.LatestClaim ||
			len(got.Items) != 1 || got.Items[0].ItemJSON != `{"sequence":1}` || len(got.MemberIDs) != 1 || len(got.UMEvents) != 1 {
			t.Errorf("%s read back as %+v", want.ID, got)
		}
		ev, err := feed.EventsAt(ctx, want.ID, 1)
		if err != nil || len(ev) != 1 || ev[0].ID != want.ID+"-1" || ev[0].Kind != "submitted" {
			t.Errorf("%s: events of version 1: %+v, %v", want.ID, ev, err)
		}
		// The next version is written deflated; the loader rolls forward to it.
		got.Status = "complete"
		if err := s.UpdateAuthorization(ctx, got); err != nil {
			t.Fatal(err)
		}
		again, err := s.Authorization(ctx, "t1", want.ID)
		if err != nil || again.Version != 2 || again.Status != "complete" || again.LatestClaim != want.LatestClaim || again.Items[0].ItemJSON == "" {
			t.Errorf("%s after an update: %+v, %v", want.ID, again, err)
		}
	}

	// A revision in a form this release does not know, or holding another
	// version than its _id names, is an error, not an empty chain.
	for id, doc := range map[string]bson.D{
		"PAodd":  {{Key: "_id", Value: "PAodd@00000001"}, {Key: "future", Value: "form"}},
		"PAskew": {{Key: "_id", Value: "PAskew@00000001"}, {Key: "doc", Value: bson.D{{Key: "_id", Value: "PAskew"}, {Key: "version", Value: 7}}}},
	} {
		if _, err := db.Collection("revisions").InsertOne(ctx, doc); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Collection("authorizations").InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "tenant", Value: "t1"}, {Key: "version", Value: 1}}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Authorization(ctx, "t1", id); err == nil {
			t.Errorf("%s: read as %+v, want an error", id, got)
		}
	}

	body := `{"resourceType":"Bundle","type":"collection","entry":[]}`
	if err := s.SaveRequestBundle(ctx, &store.RequestBundle{Key: "k-new", Tenant: "t1", Authorization: "PAnew", Received: now, Body: body}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("bundles").InsertOne(ctx, bson.D{{Key: "_id", Value: "k-old"}, {Key: "tenant", Value: "t1"},
		{Key: "authorization", Value: "PAold"}, {Key: "received", Value: now}, {Key: "body", Value: body}}); err != nil {
		t.Fatal(err)
	}
	raw = nil
	if err := db.Collection("bundles").FindOne(ctx, bson.D{{Key: "_id", Value: "k-new"}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["z"].(bson.Binary); !ok || raw["body"] != nil {
		t.Errorf("a new request Bundle is stored as %v, want its body deflated in z", raw)
	}
	for _, k := range []string{"k-new", "k-old"} {
		b, err := s.RequestBundle(ctx, k)
		if err != nil || b.Body != body || b.Tenant != "t1" || !b.Received.Equal(now) || b.Authorization == "" {
			t.Errorf("request Bundle %s read back as %+v, %v", k, b, err)
		}
	}
}
