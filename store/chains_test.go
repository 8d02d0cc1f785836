package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

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
