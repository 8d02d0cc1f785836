package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/priora/priora/store"
)

// TestDatabaseFromURI: a database named in MONGODB_URI's path is the one
// Priora uses; without one it is "priora".
func TestDatabaseFromURI(t *testing.T) {
	ctx := context.Background()
	engine := openStore(t)
	uri, ok := engine.Embedded()
	if !ok {
		t.Fatal("no embedded engine")
	}
	for _, tc := range []struct{ path, want string }{
		{"/payer_pa", "payer_pa"},
		{"/", "priora"},
	} {
		u := withPath(t, uri, tc.path)
		s, err := store.Open(ctx, store.Options{URI: u})
		if err != nil {
			t.Fatalf("open %s: %v", u, err)
		}
		if got := s.DB().Name(); got != tc.want {
			t.Errorf("URI path %q: database %q, want %q", tc.path, got, tc.want)
		}
		s.Close(ctx)
	}
}

// withPath puts path between a mongodb:// URI's hosts and its options.
func withPath(t *testing.T, uri, path string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(uri, "mongodb://")
	if !ok {
		t.Fatalf("uri %q", uri)
	}
	hosts, query, _ := strings.Cut(rest, "?")
	hosts = strings.TrimSuffix(hosts, "/")
	if query != "" {
		query = "?" + query
	}
	return "mongodb://" + hosts + path + query
}

// TestSchemaVersion: a new database records the current schema; one written
// by a newer Priora is refused rather than misread.
func TestSchemaVersion(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, store.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Schema(ctx); err != nil || v != store.SchemaVersion {
		t.Fatalf("schema = %d, %v; want %d", v, err, store.SchemaVersion)
	}
	if _, err := s.DB().Collection("meta").UpdateOne(ctx, bson.D{{Key: "_id", Value: "schema"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: store.SchemaVersion + 1}}}}); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	if s, err := store.Open(ctx, store.Options{DataDir: dir}); !errors.Is(err, store.ErrSchemaTooNew) {
		if s != nil {
			s.Close(ctx)
		}
		t.Fatalf("open a database of a newer schema: err = %v, want ErrSchemaTooNew", err)
	}
}

// TestBackgroundRecordsDrainOnClose: hook call records written without
// waiting (calls that made no coverage assertion) are all stored by a
// clean Close; a durable one is stored before RecordHookCall returns, and
// its assertions are found by id.
func TestBackgroundRecordsDrainOnClose(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, store.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Truncate(time.Millisecond)
	call := store.HookCallID("durable")
	id := store.AssertionID(call, 2)
	rec := &store.HookCall{ID: call, Received: start, Service: "order-sign-crd", Status: 200, Assertions: []string{id},
		Made: []store.CoverageAssertion{{ID: id, Hook: "order-sign", Order: "ServiceRequest/1", Covered: "covered", Date: start}}}
	if err := s.RecordHookCall(ctx, rec, true); err != nil {
		t.Fatal(err)
	}
	if a, err := s.CoverageAssertion(ctx, id); err != nil || a.Order != "ServiceRequest/1" {
		t.Fatalf("assertion %s: %+v %v", id, a, err)
	}
	if _, err := s.CoverageAssertion(ctx, store.AssertionID(call, 3)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an id the call did not make: %v, want ErrNotFound", err)
	}
	const n = 300
	for i := range n {
		c := &store.HookCall{ID: store.HookCallID(fmt.Sprintf("bg%04d", i)), Received: start, Service: "order-sign-crd", Status: 200, Outcome: "ok"}
		if err := s.RecordHookCall(ctx, c, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s, err = store.Open(ctx, store.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	calls, err := s.HookCalls(ctx, start, 1000)
	if err != nil || len(calls) != n+1 {
		t.Fatalf("after a clean close %d call records (%v), want %d", len(calls), err, n+1)
	}
	audit, err := s.Audit(ctx, store.AuditFilter{Since: start, Limit: 5})
	if err != nil || len(audit) != 5 || audit[0].Type != "cds-hook" || audit[0].Route != "/cds-services/:id" {
		t.Errorf("the audit trail lists the calls: %v %+v", err, audit)
	}
}

// TestMigrateReviewStates: chains stored before the work queue kept a
// review state get one when the database is opened (schema 1→2), so the
// queue's state filter finds them.
func TestMigrateReviewStates(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, store.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	chains := map[string]store.Authorization{
		"PAold-pended": {Status: "pended", Items: []store.Item{{Sequence: 1, Decision: store.Decision{Action: "pend"}}}},
		"PAold-info":   {Status: "pended", Items: []store.Item{{Sequence: 1, Decision: store.Decision{Action: "pend", RequestInfo: []string{"11506-3"}}}}},
		"PAold-done":   {Status: "complete", Items: []store.Item{{Sequence: 1, Decision: store.Decision{Action: "approve"}}}},
	}
	for id, a := range chains {
		a.ID, a.Created, a.Updated, a.DueAt = id, now, now, now.Add(time.Hour)
		if err := s.CreateAuthorization(ctx, &a); err != nil {
			t.Fatal(err)
		}
	}
	// As an older Priora left them: no state, schema 1.
	if _, err := s.DB().Collection("authorizations").UpdateMany(ctx, bson.D{}, bson.D{{Key: "$unset", Value: bson.D{{Key: "state", Value: ""}}}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReviewQueue(ctx, store.ReviewFilter{State: "new"}); err != nil || len(got) != 0 {
		t.Fatalf("before the migration the state filter finds %d chains (%v), want 0", len(got), err)
	}
	if _, err := s.DB().Collection("meta").UpdateOne(ctx, bson.D{{Key: "_id", Value: "schema"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: 1}}}}); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	s, err = store.Open(ctx, store.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	for state, want := range map[string]string{"new": "PAold-pended", "awaiting-info": "PAold-info", "decided": "PAold-done"} {
		got, err := s.ReviewQueue(ctx, store.ReviewFilter{State: state})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ID != want {
			t.Errorf("state %s lists %d chains, want %s", state, len(got), want)
		}
	}
	if v, err := s.Schema(ctx); err != nil || v != store.SchemaVersion {
		t.Errorf("schema after the migration = %d, %v", v, err)
	}
}
