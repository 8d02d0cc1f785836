package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/priora/priora/store"
)

// TestStageDropLarge: a run's stage larger than the embedded engine can
// delete in one statement (about 32,000 documents) is dropped whole, and
// another run's stage is kept.
func TestStageDropLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: writes 33,000 documents")
	}
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	now := time.Now()
	for i := 0; i < 33; i++ { // 33,000: past the 32,766 variables of one statement
		m := map[string][]byte{}
		for j := 0; j < 1000; j++ {
			m[fmt.Sprintf("p/%d-%d", i, j)] = []byte{1}
		}
		if err := st.StagePut(ctx, "big", m, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.StagePut(ctx, "other", map[string][]byte{"k": {2}}, now); err != nil {
		t.Fatal(err)
	}
	if err := st.StageDrop(ctx, "big", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, err := st.CountImportStage(ctx); err != nil || n != 1 {
		t.Errorf("after the drop the stage holds %d documents (%v), want the other run's 1", n, err)
	}
}
