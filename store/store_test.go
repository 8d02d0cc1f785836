package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

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
