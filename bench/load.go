// Package bench is Priora's load tool (priora load): it drives CRD
// order-sign calls with full prefetch and PAS $submit requests, each new
// to the server, at a fixed rate or flat out, and reports throughput,
// latency percentiles, errors and the server's resident memory, as JSON
// and as an SVG plot.
//
// It speaks HTTP only, as an EHR would, so it measures any Priora (or any
// PAS/CRD server that accepts the same fixtures). By default it refuses
// targets that are not on a loopback address: a load test is not
// something to point at a shared server by accident.
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Scenario names.
const (
	OrderSign = "order-sign"
	Submit    = "submit"
)

// PacedWorkers is a paced run's default number of workers (requests in
// flight at most, one connection each). By Little's law 2,000 requests/s
// answered in 10 ms keep about 20 in flight, so 256 leaves room for a
// server that slows down a hundredfold before the schedule slips (and when
// it does, the latencies still count the wait: see record.latency), while
// staying well below the server's default per-address connection cap
// (PRIORA_MAX_CONNS_PER_IP, 512).
const PacedWorkers = 256

// Config is one load run.
type Config struct {
	// Bases are the servers' root URLs (http://127.0.0.1:8080); requests
	// go to them in turn.
	Bases []string
	// Mix weighs the scenarios, e.g. {"order-sign": 9, "submit": 1}.
	Mix map[string]int
	// Rate is requests per second (open loop); 0 runs flat out with
	// Concurrency requests in flight.
	Rate        float64
	Concurrency int
	// Duration and Requests bound the run (whichever comes first; at least
	// one must be set). Warmup runs before and is not counted.
	Duration time.Duration
	Requests int64
	Warmup   time.Duration
	// Timeout bounds one request (default 30 s).
	Timeout time.Duration
	// Auth is how requests authenticate; nil sends no credentials (a
	// server with PRIORA_INSECURE_DEV=1).
	Auth *Auth
	// ServerPID is the server process whose RSS is sampled; 0 finds the
	// process listening on the first base's port (Linux), when it can.
	ServerPID int
	// AllowRemote permits non-loopback targets.
	AllowRemote bool
	// Progress receives a progress bar (nil: none).
	Progress io.Writer
	// Client overrides the HTTP client (tests).
	Client *http.Client
}

// target is one kind of request with its bodies.
type target struct {
	scenario  string
	path      string
	templates []*Template
	hook      bool
}

func (c *Config) check() error {
	if len(c.Bases) == 0 {
		return errors.New("load: no server (--base)")
	}
	for i, b := range c.Bases {
		u, err := url.Parse(strings.TrimRight(b, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("load: base %q is not an http(s) URL", b)
		}
		if !c.AllowRemote && !isLoopback(u.Hostname()) {
			return fmt.Errorf("load: %s is not a loopback address; pass --allow-remote to load another machine", u.Host)
		}
		c.Bases[i] = u.String()
	}
	if c.Duration <= 0 && c.Requests <= 0 {
		return errors.New("load: set a duration or a request count")
	}
	if c.Rate < 0 {
		return errors.New("load: the rate must not be negative")
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4 * runtime.GOMAXPROCS(0)
		if c.Rate > 0 {
			c.Concurrency = PacedWorkers
		}
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if len(c.Mix) == 0 {
		return errors.New("load: no scenario")
	}
	for s, w := range c.Mix {
		if s != OrderSign && s != Submit {
			return fmt.Errorf("load: unknown scenario %q (order-sign, submit)", s)
		}
		if w < 0 {
			return fmt.Errorf("load: negative weight for %s", s)
		}
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Run drives the load and returns the result. It ends when the duration
// or the request count is reached, or ctx ends.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	var targets []*target
	var weights []int
	for _, s := range []string{OrderSign, Submit} {
		w := cfg.Mix[s]
		if w == 0 {
			continue
		}
		t := &target{scenario: s}
		var err error
		switch s {
		case OrderSign:
			t.path, t.hook = "/cds-services/order-sign-crd", true
			t.templates, err = HookTemplates()
		case Submit:
			t.path = "/fhir/Claim/$submit"
			t.templates, err = SubmitTemplates()
		}
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
		weights = append(weights, w)
	}
	client := cfg.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = cfg.Concurrency + 16
		tr.MaxIdleConnsPerHost = cfg.Concurrency + 16
		// No more connections than workers: a worker whose connection is
		// not yet back in the pool would otherwise dial another, and a
		// client over the server's per-address cap
		// (PRIORA_MAX_CONNS_PER_IP) is refused.
		tr.MaxConnsPerHost = cfg.Concurrency
		tr.DisableCompression = true
		client = &http.Client{Transport: tr, Timeout: cfg.Timeout}
		// Close what the run opened when it ends. The transport can dial a
		// connection it then never uses (a worker took one that came back
		// to the pool first); the server counts such a connection as a
		// request on its way and waits for it when it shuts down.
		defer tr.CloseIdleConnections()
	}
	for _, b := range cfg.Bases {
		if err := reachable(ctx, client, b); err != nil {
			return nil, err
		}
	}
	if cfg.Auth != nil {
		if err := cfg.Auth.start(ctx, client, cfg.Bases[0]); err != nil {
			return nil, err
		}
	}
	r := &runner{cfg: cfg, client: client, targets: targets, schedule: expandWeights(weights), runID: RunID()}
	pid := cfg.ServerPID
	if pid == 0 {
		pid = findListener(cfg.Bases[0])
	}
	return r.run(ctx, pid)
}

// reachable checks that a server answers at base before the run, so that a
// wrong address fails at once instead of as a run of refused requests.
func reachable(ctx context.Context, c *http.Client, base string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("load: %s does not answer: %w", base, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // read to the end, so the connection is kept
	resp.Body.Close()
	return nil
}

// expandWeights turns weights into a repeating schedule of target indexes,
// spread out (9:1 is nine order-signs, then one submit).
func expandWeights(ws []int) []int {
	var out []int
	for i, w := range ws {
		for range w {
			out = append(out, i)
		}
	}
	return out
}

type runner struct {
	cfg      Config
	client   *http.Client
	targets  []*target
	schedule []int
	runID    string
	seq      atomic.Int64
}

// record is one finished request.
type record struct {
	at time.Duration // since the start of measurement, when sent
	// latency is what the user of a paced run waits: from the request's
	// scheduled send time to its answer, so time spent queued behind slow
	// answers counts (coordinated-omission corrected, as wrk2 and vegeta
	// measure). Flat out it equals service.
	latency time.Duration
	// service is from the actual send to the answer.
	service time.Duration
	target  uint8
	status  int
	err     string
}

// do sends request number n and measures it.
func (r *runner) do(ctx context.Context, n int64) record {
	ti := r.schedule[int(n)%len(r.schedule)]
	t := r.targets[ti]
	tpl := t.templates[int(n/int64(len(r.schedule)))%len(t.templates)]
	var token string
	if t.hook {
		token = fmt.Sprintf("%s-%04x-4%03x-8000-%012x", r.runID, (n>>40)&0xffff, (n>>28)&0xfff, n&0xffffffffffff)
	} else {
		token = fmt.Sprintf("%s-%d", r.runID, n)
	}
	body := tpl.Render(token)
	base := r.cfg.Bases[int(n)%len(r.cfg.Bases)]
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+t.path, bytes.NewReader(body))
	rec := record{target: uint8(ti)}
	if err != nil {
		rec.err = err.Error()
		return rec
	}
	if t.hook {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
	} else {
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("Accept", "application/fhir+json")
	}
	if a := r.cfg.Auth; a != nil {
		if err := a.authorize(ctx, req, t.hook); err != nil {
			rec.err = "auth: " + err.Error()
			return rec
		}
	}
	start := time.Now()
	resp, err := r.client.Do(req)
	if err != nil {
		rec.latency = time.Since(start)
		rec.err = shortErr(err)
		return rec
	}
	var refusal []byte
	if resp.StatusCode == http.StatusTooManyRequests {
		refusal, err = io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	}
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	rec.latency = time.Since(start)
	rec.status = resp.StatusCode
	if err != nil {
		rec.err = shortErr(err)
	} else if refusal != nil {
		rec.err = refusalKind(refusal)
	}
	return rec
}

// refusalKind names a 429 by what the server said: Priora's connection
// cap names PRIORA_MAX_CONNS_PER_IP; anything else is taken for a rate
// limit.
func refusalKind(body []byte) string {
	if bytes.Contains(body, []byte("PRIORA_MAX_CONNS_PER_IP")) {
		return "429 too many connections"
	}
	return "429 rate limited"
}

func shortErr(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// run is the warm-up, then the measured run.
func (r *runner) run(ctx context.Context, pid int) (*Result, error) {
	if r.cfg.Warmup > 0 {
		// The warm-up stops sending when it is over but lets the requests
		// in flight finish: cancelling them would close their connections
		// (up to one per worker when a cold server is slow) just before
		// the measured run dials new ones, faster than the server sees the
		// old ones close, and the server counts both against its
		// per-address cap (#19: the first errors of a paced run came from
		// there).
		wctx, cancel := context.WithTimeout(ctx, r.cfg.Warmup)
		r.drive(wctx, ctx, r.cfg.Warmup, 0, nil, nil)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	res := newResult(r.cfg, r.targets)
	rss := startRSS(ctx, pid)
	res.begin()
	live := newLive()
	prog := startProgress(r.cfg, live, rss)
	var mu sync.Mutex
	var recs []record
	collect := func(batch []record) {
		mu.Lock()
		recs = append(recs, batch...)
		mu.Unlock()
	}
	rctx := ctx
	if r.cfg.Duration > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, r.cfg.Duration)
		defer cancel()
	}
	start := time.Now()
	r.drive(rctx, rctx, r.cfg.Duration, r.cfg.Requests, live, collect)
	elapsed := time.Since(start)
	prog.stop()
	res.finish(recs, elapsed, rss.stop(), live.maxLag())
	return res, nil
}

// drive sends requests until stop ends or limit requests were sent (0: no
// limit); requests in flight end with ctx. With a rate, request i is due
// at i/rate after the start (open loop: a slow answer does not slow the
// sending); flat out, each worker sends its next request as soon as its
// last one is answered.
func (r *runner) drive(stop, ctx context.Context, d time.Duration, limit int64, live *live, collect func([]record)) {
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range r.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var batch []record
			defer func() {
				if collect != nil {
					collect(batch)
				}
			}()
			for {
				i := next.Add(1) - 1
				if limit > 0 && i >= limit {
					return
				}
				var due time.Time
				if r.cfg.Rate > 0 {
					due = start.Add(time.Duration(float64(i) / r.cfg.Rate * float64(time.Second)))
					if d > 0 && due.Sub(start) >= d {
						return
					}
					if wait := time.Until(due); wait > 0 {
						t := time.NewTimer(wait)
						select {
						case <-stop.Done():
							t.Stop()
							return
						case <-t.C:
						}
					} else if live != nil {
						live.lag(-wait)
					}
				}
				if stop.Err() != nil {
					return
				}
				n := r.seq.Add(1)
				sent := time.Since(start)
				rec := r.do(ctx, n)
				if ctx.Err() != nil && rec.err != "" {
					return // cut off by the end of the run, not an error
				}
				rec.at = sent
				rec.service = rec.latency
				if !due.IsZero() {
					if late := start.Add(sent).Sub(due); late > 0 {
						rec.latency += late
					}
				}
				if live != nil {
					live.add(rec)
				}
				if collect != nil {
					batch = append(batch, rec)
				}
			}
		}()
	}
	wg.Wait()
}
