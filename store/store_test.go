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
