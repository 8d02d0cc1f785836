// Package suite is a conformance test suite for Da Vinci PAS and CRD
// servers. It acts as an EHR: it submits prior-authorization requests,
// subscribes to their results and listens for the notifications, calls the
// CDS Hooks services, and checks every answer against the IG rules and,
// through the profiles package, the IG profiles. It speaks HTTP only and
// imports nothing of Priora's server side, so it can test anyone's server.
//
// Tests mirror the Inferno PAS (v2.2.1) and CRD (v2.2.1) server suites:
// ids such as "pas-2.1.1.02" or "crd-3.6.05" follow their numbering. Run
// builds the tests for the chosen suites, runs them in order and returns a
// Report, writing live progress to Config.Progress.
package suite

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Status is the outcome of one test.
type Status string

// Statuses, from best to worst for a summary: a warning passes with a
// remark, a skip did not run (missing input or an earlier failure).
const (
	Pass Status = "pass"
	Warn Status = "warn"
	Skip Status = "skip"
	Fail Status = "fail"
)

// Test is one check.
type Test struct {
	ID    string // e.g. "pas-2.1.1.02"
	Name  string
	Group string // e.g. "PAS 2.1 Successful Approval"
	Run   func(*T)
}

// T is what a running test reports through. Fail records a failure and
// lets the test go on (to report every finding); Fatal, Skip and Skipf end
// the test at once.
type T struct {
	ctx      context.Context
	status   Status
	messages []string
	mu       sync.Mutex
}

// Context is the run's context: tests pass it to every request.
func (t *T) Context() context.Context { return t.ctx }

func (t *T) note(s Status, format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if msg != "" {
		t.messages = append(t.messages, msg)
	}
	if rank(s) > rank(t.status) {
		t.status = s
	}
}

func rank(s Status) int {
	switch s {
	case Warn:
		return 1
	case Skip:
		return 2
	case Fail:
		return 3
	}
	return 0
}

// Failf records a failure; the test goes on.
func (t *T) Failf(format string, args ...any) { t.note(Fail, format, args...) }

// Fatalf records a failure and ends the test.
func (t *T) Fatalf(format string, args ...any) {
	t.note(Fail, format, args...)
	runtime.Goexit()
}

// Skipf ends the test as skipped, unless it has already failed.
func (t *T) Skipf(format string, args ...any) {
	t.note(Skip, format, args...)
	runtime.Goexit()
}

// Warnf records a warning: the test still passes.
func (t *T) Warnf(format string, args ...any) { t.note(Warn, format, args...) }

// Logf records a message without changing the outcome.
func (t *T) Logf(format string, args ...any) { t.note(Pass, format, args...) }

// Failed reports whether the test has failed so far.
func (t *T) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status == Fail
}

// Result is the outcome of one test.
type Result struct {
	ID       string        `json:"id"`
	Name     string        `json:"name"`
	Group    string        `json:"group"`
	Status   Status        `json:"status"`
	Messages []string      `json:"messages,omitempty"`
	Duration time.Duration `json:"durationNs"`
}

// run runs one test in its own goroutine (so Fatalf and Skipf can end it)
// and recovers a panic as a failure.
func run(ctx context.Context, test Test) Result {
	t := &T{ctx: ctx, status: Pass}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				t.note(Fail, "test panicked: %v", r)
			}
		}()
		if ctx.Err() != nil {
			t.Skipf("run cancelled: %v", context.Cause(ctx))
		}
		test.Run(t)
	}()
	<-done
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.status == Skip && len(t.messages) == 0 {
		t.messages = []string{"skipped"}
	}
	return Result{ID: test.ID, Name: test.Name, Group: test.Group, Status: t.status,
		Messages: t.messages, Duration: time.Since(start)}
}

// Counts tallies results by status.
type Counts struct {
	Pass int `json:"pass"`
	Warn int `json:"warn"`
	Skip int `json:"skip"`
	Fail int `json:"fail"`
}

func (c *Counts) add(s Status) {
	switch s {
	case Pass:
		c.Pass++
	case Warn:
		c.Warn++
	case Skip:
		c.Skip++
	case Fail:
		c.Fail++
	}
}

// Total is the number of tests counted.
func (c Counts) Total() int { return c.Pass + c.Warn + c.Skip + c.Fail }

// Report is the outcome of a run.
type Report struct {
	Suite    string        `json:"suite"` // pas, crd or all
	Target   string        `json:"target"`
	CDSBase  string        `json:"cdsBase,omitempty"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"durationNs"`
	Counts   Counts        `json:"counts"`
	Results  []Result      `json:"results"`
}

// Failed reports whether any test failed.
func (r *Report) Failed() bool { return r.Counts.Fail > 0 }

// Result returns the result of a test by id.
func (r *Report) Result(id string) (Result, bool) {
	for _, res := range r.Results {
		if res.ID == id {
			return res, true
		}
	}
	return Result{}, false
}

// progress writes one line per test, group headings and the summary.
type progress struct {
	w     interface{ Write([]byte) (int, error) }
	group string
}

func (p *progress) result(r Result) {
	if p.w == nil {
		return
	}
	if r.Group != p.group {
		p.group = r.Group
		fmt.Fprintf(p.w, "\n%s\n", r.Group)
	}
	fmt.Fprintf(p.w, "  %-4s  %-15s %s (%s)\n", strings.ToUpper(string(r.Status)), r.ID, r.Name, r.Duration.Round(time.Millisecond))
	if r.Status != Pass {
		for _, m := range r.Messages {
			fmt.Fprintf(p.w, "          %s\n", indent(m))
		}
	}
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n          ") }

func (p *progress) summary(r *Report) {
	if p.w == nil {
		return
	}
	c := r.Counts
	fmt.Fprintf(p.w, "\n%d tests in %s: %d passed, %d warned, %d skipped, %d failed\n",
		c.Total(), r.Duration.Round(time.Millisecond), c.Pass, c.Warn, c.Skip, c.Fail)
	if c.Fail > 0 {
		fmt.Fprintln(p.w, "Failed:")
		for _, res := range r.Results {
			if res.Status == Fail {
				fmt.Fprintf(p.w, "  %s  %s\n", res.ID, res.Name)
			}
		}
	}
}
