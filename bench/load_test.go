package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/priora/priora/bench"
	"github.com/priora/priora/internal/testenv"
)

// TestRun drives each scenario briefly against a real Priora and checks
// that every request was new to the server and answered 2xx, and that the
// reports are written.
func TestRun(t *testing.T) {
	e := testenv.Start(t)
	for _, tc := range []struct {
		name string
		mix  map[string]int
		rate float64
	}{
		{"order-sign flat out", map[string]int{bench.OrderSign: 1}, 0},
		{"submit at a rate", map[string]int{bench.Submit: 1}, 50},
		{"mixed", map[string]int{bench.OrderSign: 3, bench.Submit: 1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := bench.Run(ctx, bench.Config{
				Bases: []string{e.URL}, Mix: tc.mix, Rate: tc.rate, Concurrency: 4,
				Requests: 24, Duration: 30 * time.Second, ServerPID: os.Getpid(),
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != 24 || res.OK != 24 {
				t.Fatalf("requests %d, ok %d, errors %v; want 24 ok", res.Requests, res.OK, res.ErrorKinds)
			}
			if res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 || res.RSS == nil {
				t.Errorf("latency %+v, rss %+v", res.Latency, res.RSS)
			}
			var js, svg bytes.Buffer
			if err := res.WriteJSON(&js); err != nil || !json.Valid(js.Bytes()) {
				t.Errorf("JSON: %v", err)
			}
			if err := res.WriteSVG(&svg); err != nil || !strings.Contains(svg.String(), "<polyline") {
				t.Errorf("SVG: %v", err)
			}
		})
	}
}

// TestTemplatesAreNew checks that two renderings differ where the server
// keys requests and agree everywhere else.
func TestTemplatesAreNew(t *testing.T) {
	subs, err := bench.SubmitTemplates()
	if err != nil {
		t.Fatal(err)
	}
	hooks, err := bench.HookTemplates()
	if err != nil {
		t.Fatal(err)
	}
	for _, tpl := range append(subs, hooks...) {
		a, b := tpl.Render("run1-1"), tpl.Render("run1-2")
		if bytes.Equal(a, b) || !json.Valid(a) {
			t.Errorf("%s: renderings equal or invalid", tpl.Name)
		}
		if !bytes.Equal(a, tpl.Render("run1-1")) {
			t.Errorf("%s: the same token renders differently", tpl.Name)
		}
	}
}

func TestRefusesRemoteTargets(t *testing.T) {
	_, err := bench.Run(context.Background(), bench.Config{
		Bases: []string{"http://192.0.2.1:8080"}, Mix: map[string]int{bench.OrderSign: 1}, Requests: 1,
	})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("err = %v, want a refusal of the non-loopback target", err)
	}
}

// TestPacedLatencyCountsQueueing: in a paced run against a server that
// answers one request at a time, slowly, requests wait for the previous
// ones; their latency is measured from when they were due, not from when
// the load tool finally sent them (coordinated omission), and the run says
// that the rate was not reached.
func TestPacedLatencyCountsQueueing(t *testing.T) {
	e := testenv.Start(t)
	target, _ := url.Parse(e.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var one sync.Mutex
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		one.Lock()
		defer one.Unlock()
		time.Sleep(40 * time.Millisecond) // the server's work, serialised
		proxy.ServeHTTP(w, r)
	}))
	defer slow.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// 100/s asked of a server that does at most 25/s.
	res, err := bench.Run(ctx, bench.Config{Bases: []string{slow.URL}, Mix: map[string]int{bench.OrderSign: 1},
		Rate: 100, Concurrency: 4, Requests: 40, Duration: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 40 || res.ServiceTime == nil || res.RateReached == nil {
		t.Fatalf("ok %d, service time %v, rate reached %v", res.OK, res.ServiceTime, res.RateReached)
	}
	if *res.RateReached {
		t.Errorf("rate reached at %.1f/s of 100/s from a server that does 25/s", res.Throughput)
	}
	// The last requests were due within 0.4 s but answered after about
	// 40 × 40 ms = 1.6 s: their corrected latency is about a second, while
	// each took the server little more than its 40 ms (plus the wait for a
	// worker of the four in the load tool).
	if res.Latency.Max < 2*res.ServiceTime.Max || res.Latency.Max < 600 {
		t.Errorf("corrected latency max %.0f ms, service time max %.0f ms: the queueing is not counted", res.Latency.Max, res.ServiceTime.Max)
	}
}
