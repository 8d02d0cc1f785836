package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Result is what a run measured. It is written as JSON (WriteJSON) and
// drawn as SVG (WriteSVG).
type Result struct {
	Started  time.Time `json:"started"`
	Machine  Machine   `json:"machine"`
	Bases    []string  `json:"bases"`
	Mode     string    `json:"mode"` // "rate" or "flat-out"
	Rate     float64   `json:"rate,omitempty"`
	Workers  int       `json:"concurrency"`
	Mix      string    `json:"mix"`
	Auth     string    `json:"auth"`
	Duration float64   `json:"duration_s"`

	Requests   int64            `json:"requests"`
	OK         int64            `json:"ok"`
	Errors     int64            `json:"errors"`
	ErrorKinds map[string]int64 `json:"error_kinds,omitempty"`
	// ErrorClasses counts the errors by class (errorClass): "connection"
	// (EOF, reset, broken pipe: no answer), "refused (429)", "timeout",
	// "status" (another answer not 2xx), "other".
	ErrorClasses map[string]int64 `json:"error_classes,omitempty"`
	Throughput   float64          `json:"throughput_per_s"` // 2xx answers per second
	// Latency is measured from each request's scheduled send time in a
	// paced run (coordinated-omission corrected: a request that had to wait
	// for a free connection because the server was slow counts that wait),
	// from the actual send flat out.
	Latency Latency `json:"latency_ms"`
	// ServiceTime, in a paced run, is from the actual send to the answer:
	// what the server took once it had the request.
	ServiceTime *Latency `json:"service_time_ms,omitempty"`
	// RateReached says whether a paced run delivered at least 95 % of its
	// rate; when false, its latencies describe an overloaded server.
	RateReached *bool `json:"rate_reached,omitempty"`
	// ClientCPUSeconds is the CPU the load tool itself used: on a shared
	// machine it is taken from the server.
	ClientCPUSeconds float64 `json:"load_tool_cpu_s"`
	// MaxLagMS is how late the open-loop sender was at worst: large values
	// mean the load tool itself could not keep the rate.
	MaxLagMS float64 `json:"max_send_lag_ms,omitempty"`

	Scenarios map[string]*ScenarioResult `json:"scenarios"`
	RSS       *RSS                       `json:"server_rss,omitempty"`
	// Windows are one-second slices of the run, for the plot.
	Windows []Window `json:"windows"`

	targets    []*target
	recs       []record
	clientCPU0 float64
}

// Machine describes where the run happened; the load average matters on a
// shared machine.
type Machine struct {
	CPUs          int       `json:"cpus"`
	GOOS          string    `json:"goos"`
	GOARCH        string    `json:"goarch"`
	GoVersion     string    `json:"go_version"`
	CPUModel      string    `json:"cpu_model,omitempty"`
	LoadAvgBefore []float64 `json:"loadavg_before,omitempty"`
	LoadAvgAfter  []float64 `json:"loadavg_after,omitempty"`
}

// Latency percentiles in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// ScenarioResult is one scenario's share of the run.
type ScenarioResult struct {
	Requests   int64   `json:"requests"`
	OK         int64   `json:"ok"`
	Errors     int64   `json:"errors"`
	Throughput float64 `json:"throughput_per_s"`
	Latency    Latency `json:"latency_ms"`
}

// Window is one second of the run.
type Window struct {
	T       float64 `json:"t_s"`
	OK      int64   `json:"ok"`
	Errors  int64   `json:"errors"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
	RSSMiB  float64 `json:"rss_mib,omitempty"`
	scratch []time.Duration
}

func newResult(cfg Config, targets []*target) *Result {
	r := &Result{
		Bases: cfg.Bases, Workers: cfg.Concurrency, Rate: cfg.Rate, targets: targets,
		Machine: Machine{CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version(), CPUModel: cpuModel()},
		Auth:    "none", Scenarios: map[string]*ScenarioResult{},
	}
	r.Mode = "flat-out"
	if cfg.Rate > 0 {
		r.Mode = "rate"
	}
	var mix []string
	for _, s := range []string{OrderSign, Submit} {
		if w := cfg.Mix[s]; w > 0 {
			mix = append(mix, s+"="+strconv.Itoa(w))
		}
	}
	r.Mix = strings.Join(mix, ",")
	if cfg.Auth != nil {
		r.Auth = cfg.Auth.describe()
	}
	return r
}

func (r *Result) begin() {
	r.Started = time.Now().UTC()
	r.Machine.LoadAvgBefore = loadAvg()
	r.clientCPU0, _ = readCPU(os.Getpid())
}

func (r *Result) finish(recs []record, elapsed time.Duration, rss *RSS, lag time.Duration) {
	r.Machine.LoadAvgAfter = loadAvg()
	if c, err := readCPU(os.Getpid()); err == nil {
		r.ClientCPUSeconds = round(c-r.clientCPU0, 2)
	}
	r.Duration = round(elapsed.Seconds(), 3)
	r.recs = recs
	r.RSS = rss
	r.MaxLagMS = ms(lag)
	if rss != nil && len(recs) > 0 {
		rss.CPUMSPerRequest = round(rss.CPUSeconds*1000/float64(len(recs)), 3)
	}
	slices.SortFunc(recs, func(a, b record) int { return int(a.at - b.at) })
	all := make([]time.Duration, 0, len(recs))
	service := make([]time.Duration, 0, len(recs))
	per := make([][]time.Duration, len(r.targets))
	counts := make([]ScenarioResult, len(r.targets))
	for _, rec := range recs {
		c := &counts[rec.target]
		c.Requests++
		r.Requests++
		if rec.err == "" && rec.status >= 200 && rec.status < 300 {
			c.OK++
			r.OK++
			all = append(all, rec.latency)
			per[rec.target] = append(per[rec.target], rec.latency)
			service = append(service, rec.service)
			continue
		}
		c.Errors++
		r.Errors++
		if r.ErrorKinds == nil {
			r.ErrorKinds = map[string]int64{}
		}
		kind := rec.err
		if kind == "" {
			kind = "status " + strconv.Itoa(rec.status)
		}
		r.ErrorKinds[r.targets[rec.target].scenario+": "+kind]++
		if r.ErrorClasses == nil {
			r.ErrorClasses = map[string]int64{}
		}
		r.ErrorClasses[errorClass(rec)]++
	}
	secs := elapsed.Seconds()
	r.Throughput = round(float64(r.OK)/secs, 1)
	r.Latency = latencyOf(all)
	if r.Rate > 0 {
		st := latencyOf(service)
		reached := r.Throughput >= 0.95*r.Rate
		r.ServiceTime, r.RateReached = &st, &reached
	}
	for i, t := range r.targets {
		c := counts[i]
		c.Throughput = round(float64(c.OK)/secs, 1)
		c.Latency = latencyOf(per[i])
		r.Scenarios[t.scenario] = &c
	}
	r.windows(elapsed)
}

// Error classes.
const (
	ClassConnection = "connection"
	ClassRefused    = "refused (429)"
	ClassTimeout    = "timeout"
	ClassStatus     = "status"
	ClassOther      = "other"
)

// errorClass sorts a failed request: no answer because the connection
// failed, a 429, a timeout, another status, or something else.
func errorClass(rec record) string {
	switch {
	case rec.status == 429:
		return ClassRefused
	case rec.err == "timeout":
		return ClassTimeout
	case rec.err != "":
		for _, s := range []string{"EOF", "reset by peer", "broken pipe", "closed network connection", "server closed idle connection", "connection refused"} {
			if strings.Contains(rec.err, s) {
				return ClassConnection
			}
		}
		return ClassOther
	}
	return ClassStatus
}

// windows slices the run into seconds.
func (r *Result) windows(elapsed time.Duration) {
	n := int(math.Ceil(elapsed.Seconds()))
	if n == 0 {
		return
	}
	ws := make([]Window, n)
	for i := range ws {
		ws[i].T = float64(i + 1)
	}
	for _, rec := range r.recs {
		i := min(int(rec.at/time.Second), n-1)
		w := &ws[i]
		if rec.err == "" && rec.status >= 200 && rec.status < 300 {
			w.OK++
			w.scratch = append(w.scratch, rec.latency)
		} else {
			w.Errors++
		}
	}
	for i := range ws {
		l := latencyOf(ws[i].scratch)
		ws[i].P50, ws[i].P99, ws[i].Max = l.P50, l.P99, l.Max
		ws[i].scratch = nil
		if r.RSS != nil {
			ws[i].RSSMiB = r.RSS.at(ws[i].T)
		}
	}
	r.Windows = ws
}

func latencyOf(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return ms(s[max(0, min(i, len(s)-1))])
	}
	return Latency{P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: ms(s[len(s)-1]), Mean: ms(sum / time.Duration(len(s)))}
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }

func round(f float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(f*p) / p
}

// WriteJSON writes the result, indented.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Summary is the human-readable report.
func (r *Result) Summary(w io.Writer) {
	fmt.Fprintf(w, "%s, %s, %d workers, %.1f s", r.Mix, r.Mode, r.Workers, r.Duration)
	if r.Rate > 0 {
		fmt.Fprintf(w, " at %.0f/s", r.Rate)
	}
	fmt.Fprintf(w, " (auth: %s)\n", r.Auth)
	fmt.Fprintf(w, "  requests %d, ok %d, errors %d, throughput %.1f/s\n", r.Requests, r.OK, r.Errors, r.Throughput)
	l := r.Latency
	if r.ServiceTime != nil {
		fmt.Fprintf(w, "  latency ms (from each request's scheduled send, coordinated-omission corrected): p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean %.2f\n", l.P50, l.P90, l.P99, l.Max, l.Mean)
		st := r.ServiceTime
		fmt.Fprintf(w, "  service time ms (from the actual send): p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", st.P50, st.P90, st.P99, st.Max)
		if !*r.RateReached {
			fmt.Fprintf(w, "  RATE NOT REACHED: %.1f/s delivered of %.0f/s asked; the server (or the load tool) is saturated\n", r.Throughput, r.Rate)
		}
	} else {
		fmt.Fprintf(w, "  latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean %.2f\n", l.P50, l.P90, l.P99, l.Max, l.Mean)
	}
	if len(r.Scenarios) > 1 {
		names := make([]string, 0, len(r.Scenarios))
		for n := range r.Scenarios {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			s := r.Scenarios[n]
			fmt.Fprintf(w, "  %-10s %.1f/s  p50 %.2f  p99 %.2f  max %.2f  errors %d\n", n, s.Throughput, s.Latency.P50, s.Latency.P99, s.Latency.Max, s.Errors)
		}
	}
	kinds := make([]string, 0, len(r.ErrorKinds))
	for k := range r.ErrorKinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "  error %s: %d\n", k, r.ErrorKinds[k])
	}
	if len(r.ErrorClasses) > 0 {
		fmt.Fprint(w, "  errors by class:")
		for _, c := range []string{ClassConnection, ClassRefused, ClassTimeout, ClassStatus, ClassOther} {
			if n := r.ErrorClasses[c]; n > 0 {
				fmt.Fprintf(w, " %s %d", c, n)
			}
		}
		fmt.Fprintln(w)
	}
	if r.ErrorClasses[ClassConnection] > 0 {
		fmt.Fprintf(w, "  hint: requests closed without an answer (EOF, reset) are typical of a server or proxy closing connections over a per-address cap;"+
			" this run opened up to %d connections per server: compare the server's PRIORA_MAX_CONNS_PER_IP (512 by default) or lower --concurrency\n", r.Workers)
	}
	if r.ErrorClasses[ClassRefused] > 0 {
		fmt.Fprintf(w, "  hint: 429 is the server refusing this client: \"too many connections\" is its per-address connection cap (PRIORA_MAX_CONNS_PER_IP; this run used up to %d connections per server),"+
			" \"rate limited\" its request rate limit (PRIORA_RATE_LIMIT=0 for load runs)\n", r.Workers)
	}
	if r.MaxLagMS > 5 {
		fmt.Fprintf(w, "  the load tool fell behind its schedule by up to %.1f ms\n", r.MaxLagMS)
	}
	if r.RSS != nil {
		fmt.Fprintf(w, "  server RSS MiB (pid %d): start %.1f  end %.1f  min %.1f  max %.1f", r.RSS.PID, r.RSS.StartMiB, r.RSS.EndMiB, r.RSS.MinMiB, r.RSS.MaxMiB)
		if r.RSS.DriftPct != nil {
			fmt.Fprintf(w, "  drift %+.1f%% (last tenth vs second tenth)", *r.RSS.DriftPct)
		}
		fmt.Fprintf(w, "\n  server CPU %.2f s, %.3f ms per request\n", r.RSS.CPUSeconds, r.RSS.CPUMSPerRequest)
	}
	fmt.Fprintf(w, "  load tool CPU %.2f s\n", r.ClientCPUSeconds)
	fmt.Fprintf(w, "  machine: %d CPUs %s, load average before %v after %v\n", r.Machine.CPUs, r.Machine.CPUModel, r.Machine.LoadAvgBefore, r.Machine.LoadAvgAfter)
}

func loadAvg() []float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	f := strings.Fields(string(b))
	var out []float64
	for i := 0; i < 3 && i < len(f); i++ {
		v, _ := strconv.ParseFloat(f[i], 64)
		out = append(out, v)
	}
	return out
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// live keeps running counts for the progress bar.
type live struct {
	ok, errs atomic.Int64
	maxLagNS atomic.Int64
	mu       sync.Mutex
	recent   []time.Duration // latencies since the last progress line
}

func newLive() *live { return &live{} }

func (l *live) add(rec record) {
	if rec.err == "" && rec.status >= 200 && rec.status < 300 {
		l.ok.Add(1)
	} else {
		l.errs.Add(1)
	}
	l.mu.Lock()
	if len(l.recent) < 1<<16 {
		l.recent = append(l.recent, rec.latency)
	}
	l.mu.Unlock()
}

func (l *live) lag(d time.Duration) {
	for {
		cur := l.maxLagNS.Load()
		if int64(d) <= cur || l.maxLagNS.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

func (l *live) maxLag() time.Duration { return time.Duration(l.maxLagNS.Load()) }

func (l *live) drain() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.recent
	l.recent = nil
	return out
}

type progress struct {
	done chan struct{}
	wg   sync.WaitGroup
}

// startProgress draws a progress bar every half second until stop.
func startProgress(cfg Config, l *live, rss *rssSampler) *progress {
	p := &progress{done: make(chan struct{})}
	if cfg.Progress == nil {
		return p
	}
	start := time.Now()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		var lastOK int64
		last := start
		for {
			var final bool
			select {
			case <-p.done:
				final = true
			case <-t.C:
			}
			now := time.Now()
			ok := l.ok.Load()
			rate := float64(ok-lastOK) / now.Sub(last).Seconds()
			lastOK, last = ok, now
			lat := latencyOf(l.drain())
			if final { // the whole run, not the last fraction of a tick
				rate = float64(ok) / now.Sub(start).Seconds()
			}
			frac := 0.0
			switch {
			case cfg.Duration > 0:
				frac = now.Sub(start).Seconds() / cfg.Duration.Seconds()
			case cfg.Requests > 0:
				frac = float64(ok+l.errs.Load()) / float64(cfg.Requests)
			}
			if final {
				frac = 1
			}
			frac = min(1, frac)
			const width = 30
			bar := strings.Repeat("=", int(frac*width)) + strings.Repeat(" ", width-int(frac*width))
			line := fmt.Sprintf("\r[%s] %3.0f%% %5.1fs  ok %d  err %d  %7.0f/s", bar, frac*100, now.Sub(start).Seconds(), ok, l.errs.Load(), rate)
			if !final {
				line += fmt.Sprintf("  p99 %6.2fms", lat.P99)
			}
			if mib := rss.last(); mib > 0 {
				line += fmt.Sprintf("  rss %.0fMiB", mib)
			}
			fmt.Fprint(cfg.Progress, line)
			if final {
				fmt.Fprintln(cfg.Progress)
				return
			}
		}
	}()
	return p
}

func (p *progress) stop() {
	close(p.done)
	p.wg.Wait()
}
