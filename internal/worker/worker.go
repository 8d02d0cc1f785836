// Package worker holds what Priora's background workers share: the poll
// loop, an owner name for leases in the store, and exponential backoff.
package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Loop runs step while it reports more work; when it finds none (or
// fails, which it logs) it waits for a wake-up or the next tick of every.
// It returns when ctx ends.
func Loop(ctx context.Context, log *slog.Logger, name string, every time.Duration, wake <-chan struct{}, step func(context.Context) (bool, error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		busy, err := step(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.WarnContext(ctx, "worker step failed", "loop", name, "err", err)
		}
		if busy && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
	}
}

// Owner names this process as the holder of leases: host, process id and
// a random part (a restarted process is another owner).
func Owner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Backoff is the wait after the n-th failure in a row: base, doubling,
// at most limit.
func Backoff(base, limit time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
