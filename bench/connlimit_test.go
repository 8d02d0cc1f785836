package bench_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/priora/priora/bench"
	"github.com/priora/priora/server"
)

// TestLoadStaysWithinConnectionCap: a run with as many workers as the
// server's per-address connection cap (PRIORA_MAX_CONNS_PER_IP; 512 for
// both by default, as in a paced run) opens no connection beyond them. A connection over the
// cap is closed by the server as soon as it is accepted, and a request
// sent on it fails with EOF or a reset: the load tool must not count
// those as the server's errors because it dialled one connection too many.
func TestLoadStaysWithinConnectionCap(t *testing.T) {
	const workers = 16
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"cards":[]}`))
	})}
	go func() { _ = srv.Serve(server.LimitListener(ln, workers)) }()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := bench.Run(ctx, bench.Config{
		Bases: []string{"http://" + ln.Addr().String()}, Mix: map[string]int{bench.OrderSign: 1},
		Concurrency: workers, Requests: 20000, Duration: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 {
		t.Errorf("%d of %d requests failed (%v): the load tool opened more connections than its workers", res.Errors, res.Requests, res.ErrorKinds)
	}
}
