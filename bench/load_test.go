package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/priora/priora/bench"
	"github.com/priora/priora/internal/app"
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

// TestErrorClasses: a server that refuses connections over its
// per-address cap answers 429, which the load tool counts as its own class
// with a hint naming PRIORA_MAX_CONNS_PER_IP; connections closed without an
// answer are the connection class, with the same hint.
func TestErrorClasses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Run("over the cap", func(t *testing.T) {
		e := testenv.Start(t, testenv.WithConfig(func(c *app.Config) { c.Limits.ConnsPerIP = 2 }))
		res, err := bench.Run(ctx, bench.Config{Bases: []string{e.URL}, Mix: map[string]int{bench.OrderSign: 1},
			Concurrency: 8, Requests: 40, Duration: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		var sum strings.Builder
		res.Summary(&sum)
		refused := res.ErrorClasses[bench.ClassRefused]
		if res.OK == 0 || refused == 0 || refused != res.Errors || res.ErrorKinds["order-sign: 429 too many connections"] != refused ||
			!strings.Contains(sum.String(), "PRIORA_MAX_CONNS_PER_IP") {
			t.Errorf("8 workers against a cap of 2: ok %d, errors %v %v; want 429s only, named, with a hint:\n%s", res.OK, res.ErrorKinds, res.ErrorClasses, sum.String())
		}
	})
	t.Run("closed without an answer", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				return
			}
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		}))
		defer srv.Close()
		res, err := bench.Run(ctx, bench.Config{Bases: []string{srv.URL}, Mix: map[string]int{bench.OrderSign: 1},
			Concurrency: 2, Requests: 6, Duration: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		var sum strings.Builder
		res.Summary(&sum)
		if res.ErrorClasses[bench.ClassConnection] != 6 || !strings.Contains(sum.String(), "hint: requests closed without an answer") {
			t.Errorf("errors %v %v; want 6 connection errors and the hint:\n%s", res.ErrorKinds, res.ErrorClasses, sum.String())
		}
	})
}

// TestWarmupKeepsConnections: the warm-up's requests still in flight when
// it ends are let finish, so the measured run reuses their connections.
// #19: they were cancelled, which closed their connections; the measured
// run dialled new ones at once, before the server had seen the old ones
// close, and went over its per-address cap.
func TestWarmupKeepsConnections(t *testing.T) {
	e := testenv.Start(t)
	target, _ := url.Parse(e.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond) // a slow server: every worker is busy when the warm-up ends
		proxy.ServeHTTP(w, r)
	}))
	defer slow.Close()
	var dials atomic.Int64
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost = 4, 4
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return dial(ctx, network, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := bench.Run(ctx, bench.Config{Bases: []string{slow.URL}, Mix: map[string]int{bench.OrderSign: 1},
		Rate: 100, Concurrency: 4, Warmup: 400 * time.Millisecond, Requests: 8, Duration: 30 * time.Second,
		Client: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 8 {
		t.Fatalf("ok %d, errors %v", res.OK, res.ErrorKinds)
	}
	if n := dials.Load(); n > 4 {
		t.Errorf("%d connections dialled by 4 workers: the warm-up's were closed", n)
	}
}

// TestPacedDefaultWorkers: a paced run's default worker count (one
// connection each) stays below the server's default per-address
// connection cap, 512.
func TestPacedDefaultWorkers(t *testing.T) {
	e := testenv.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := bench.Run(ctx, bench.Config{Bases: []string{e.URL}, Mix: map[string]int{bench.OrderSign: 1},
		Rate: 100, Requests: 4, Duration: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 4 || res.Workers <= 0 || res.Workers > 512*3/4 {
		t.Errorf("paced run: ok %d, %d workers; want them well below PRIORA_MAX_CONNS_PER_IP's default 512", res.OK, res.Workers)
	}
}
