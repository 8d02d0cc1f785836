// Package testenv starts a real Priora — the full wiring, on the embedded
// store, on 127.0.0.1:0 — for tests that speak HTTP to it as a client would.
package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/priora/priora/coverage"
	"github.com/priora/priora/internal/app"
)

// Env is one running Priora. Its request helpers (Do, Get, Post, Token,
// ...) report failures, including the automatic profile check of every
// successful answer (checkOutput), on T: the test that called Start. Inside a subtest use
// e.With(t), so that a failure is reported by the subtest that made it.
type Env struct {
	T       testing.TB
	URL     string // http://127.0.0.1:port
	App     *app.App
	DataDir string
	Client  *http.Client
	// Logs holds everything Priora logged, for tests that check logs.
	Logs *logBuffer

	opts   options
	cancel context.CancelFunc
	done   chan error
	// started is the Env of Start when this one was made by With.
	started *Env
	// crdVersion is the CRD version Priora answers hook calls in unless
	// a call asks for another.
	crdVersion string
}

// With returns the same Priora with its helpers bound to t (a subtest):
// e.With(t).Post(...) fails t, not the test that started Priora. After a
// Restart, call With again.
func (e *Env) With(t testing.TB) *Env {
	c := *e
	c.T = t
	if c.started == nil {
		c.started = e
	}
	return &c
}

type options struct {
	rules   *coverage.Rules
	dataDir string
	now     func() time.Time
	maxBody int64
	edit    []func(*app.Config)
	// auth turns authentication on (WithAuth); off, Priora runs with
	// InsecureDev on its loopback listener.
	auth bool
	// noResponseChecks turns off the profile validation of PAS answers.
	noResponseChecks bool
}

// Option changes how Start configures Priora.
type Option func(*options)

// WithRules uses coverage rules written as YAML.
func WithRules(yaml string) Option {
	return func(o *options) {
		r, err := coverage.Parse([]byte(yaml))
		if err != nil {
			panic("testenv: bad rules: " + err.Error())
		}
		o.rules = r
	}
}

// WithDataDir runs on an existing data directory (for restart tests).
func WithDataDir(dir string) Option { return func(o *options) { o.dataDir = dir } }

// WithNow fixes the server's clock.
func WithNow(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithMaxBody sets the request body cap.
func WithMaxBody(n int64) Option { return func(o *options) { o.maxBody = n } }

// WithConfig edits the app configuration before start.
func WithConfig(f func(*app.Config)) Option { return func(o *options) { o.edit = append(o.edit, f) } }

// WithoutResponseChecks stops Do from validating successful answers
// (checkOutput). Only for tests that make Priora accept profile-invalid
// requests (validation log or off): its answers echo the request's
// resources, defects included.
func WithoutResponseChecks() Option { return func(o *options) { o.noResponseChecks = true } }

// Start runs Priora until the test ends.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.dataDir == "" {
		o.dataDir = t.TempDir()
	}
	if _, ok := t.(*testing.B); ok {
		o.noResponseChecks = true // benchmarks time Priora, not the checks
	}
	e := &Env{T: t, DataDir: o.dataDir, opts: o, Client: &http.Client{Timeout: 30 * time.Second}}
	e.start()
	t.Cleanup(e.Stop)
	return e
}

func (e *Env) start() {
	t := e.T
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	e.URL = "http://" + ln.Addr().String()
	e.Logs = &logBuffer{}
	cfg := app.Config{
		BaseURL: e.URL,
		DataDir: e.DataDir,
		Rules:   e.opts.rules,
		MaxBody: e.opts.maxBody,
		Version: "test",
		Log:     slog.New(slog.NewJSONHandler(e.Logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:     e.opts.now,
	}
	cfg.Security.InsecureDev = !e.opts.auth
	for _, f := range e.opts.edit {
		f(&cfg)
	}
	e.crdVersion = cfg.CRDVersion
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg)
	if err != nil {
		cancel()
		ln.Close()
		t.Fatalf("start priora: %v", err)
	}
	e.App, e.cancel, e.done = a, cancel, make(chan error, 1)
	go func() { e.done <- a.Serve(ctx, ln, 5*time.Second) }()
}

// Stop shuts Priora down; it is safe to call twice.
func (e *Env) Stop() {
	if e.started != nil {
		e.started.Stop()
		return
	}
	if e.cancel == nil {
		return
	}
	// Close the client's spare connections first: one it dialed and never
	// used counts on the server as a request on its way, which the drain
	// waits for.
	e.Client.CloseIdleConnections()
	e.cancel()
	if err := <-e.done; err != nil {
		e.T.Errorf("serve: %v", err)
	}
	if err := e.App.Close(); err != nil {
		e.T.Errorf("close: %v", err)
	}
	e.cancel = nil
}

// Restart stops Priora and starts it again on the same data directory.
func (e *Env) Restart() {
	if e.started != nil {
		e.started.Restart()
		*e = *e.started.With(e.T)
		return
	}
	e.Stop()
	e.start()
}

// Response is an HTTP answer, read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic map, failing the test if it is not JSON.
func (r *Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.Body)
	}
	return m
}

// Do sends a request and reads the whole answer.
func (e *Env) Do(method, path string, body []byte, header ...string) *Response {
	e.T.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		e.T.Fatalf("new request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.Client.Do(req)
	if err != nil {
		e.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.T.Fatalf("read body: %v", err)
	}
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if r.Status/100 == 2 && method != http.MethodHead && !e.opts.noResponseChecks {
		checkOutput(e.T, method, req.URL.Path, e.crdVersion, body, r.Body)
	}
	return r
}

// Post sends a FHIR JSON body.
func (e *Env) Post(path string, body []byte, header ...string) *Response {
	e.T.Helper()
	return e.Do(http.MethodPost, path, body, header...)
}

// Get fetches a path.
func (e *Env) Get(path string, header ...string) *Response {
	e.T.Helper()
	return e.Do(http.MethodGet, path, nil, header...)
}

// Root is the repository root, found from this file's location.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Fixture reads a file under the repository's testdata/.
func Fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Root(), "testdata", filepath.FromSlash(name)))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return b
}

// Fixtures lists testdata files matching a glob, relative to testdata/.
func Fixtures(t testing.TB, pattern string) []string {
	t.Helper()
	dir := filepath.Join(Root(), "testdata")
	matches, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(pattern)))
	if err != nil {
		t.Fatalf("glob: %v", err)
	}
	for i, m := range matches {
		matches[i] = strings.TrimPrefix(filepath.ToSlash(m), filepath.ToSlash(dir)+"/")
	}
	return matches
}

// logBuffer collects Priora's log lines; it is safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
