package store_test

import (
	"context"
	"strings"
	"testing"

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
