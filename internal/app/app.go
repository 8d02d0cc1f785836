// Package app wires Priora's parts into a running server: the store, the
// coverage rules, the domain services and the HTTP handler. The command and
// the tests both start Priora through it, so they run the same wiring.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/coverage"
	"github.com/priora/priora/desk"
	"github.com/priora/priora/fhir"
	"github.com/priora/priora/hooks"
	"github.com/priora/priora/internal/outbound"
	"github.com/priora/priora/internal/reqlog"
	"github.com/priora/priora/internal/telemetry"
	"github.com/priora/priora/members"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/profiles"
	"github.com/priora/priora/server"
	"github.com/priora/priora/store"
	"github.com/priora/priora/subscriptions"
	"github.com/priora/priora/umevents"
)

// Config is what a running Priora needs, already validated by the caller.
type Config struct {
	BaseURL  string
	DataDir  string
	MongoURI string
	// Database overrides the database name (tests use one per test).
	Database string
	// Rules is the coverage rule set; nil loads RulesFile or the sample.
	Rules     *coverage.Rules
	RulesFile string
	MaxBody   int64
	Version   string
	Log       *slog.Logger
	// Now overrides the clock (tests).
	Now func() time.Time
	// Subscriptions tunes notification delivery (zero = defaults;
	// MaxPerTenant is PRIORA_MAX_SUBSCRIPTIONS, the rest are for tests).
	Subscriptions subscriptions.Options
	// Validation is what profile validation does to PAS requests:
	// ValidationEnforce ("" too), ValidationLog or ValidationOff.
	Validation string
	// CRDValidation is what profile validation does to CDS Hooks calls:
	// ValidationOff ("" too), ValidationLog, or ValidationEnforce (422 for
	// CRD profile violations, hook-13).
	CRDValidation string
	// PayerIDs are the Coverage.payor identifiers CRD answers for; empty
	// uses the rules file's payers (and empty there serves every payer).
	PayerIDs []coverage.PayerID
	// HookFetchTimeout bounds CRD's queries to an EHR per hook call
	// (default 2 s).
	HookFetchTimeout time.Duration
	// DuplicateWindow is PRIORA_DUPLICATE_WINDOW (pas.Config.DuplicateWindow).
	DuplicateWindow time.Duration
	// CRDVersion is the CRD version answered when a hook call requests
	// none: "2.2" (default) or "2.0" (the released Inferno CRD kit).
	CRDVersion string
	// Strict makes validation tolerate nothing: the documented tolerances
	// and known IG defects (profiles.Tolerances, KnownIGDefects) are
	// errors (PRIORA_STRICT=true).
	Strict bool
	// Security is authentication, TLS, rate limits and audit (security.go).
	Security Security
	// Limits bound request bodies, concurrent PAS work and connections per
	// address (zero = defaults).
	Limits server.Limits
	// Eligibility is the member roster mode: auto ("" too), enforce, warn
	// or off.
	Eligibility string
	// UMEvents tunes the UM event feed and webhooks (zero = defaults;
	// DeadlineLead is PRIORA_UM_DEADLINE_LEAD, the rest are for tests).
	UMEvents umevents.Options
	// Metrics receives Priora's Prometheus series; nil makes a new set
	// (App.Metrics), served by the command on its private listener.
	Metrics *telemetry.Metrics
}

// App is a wired Priora.
type App struct {
	Config Config
	Log    *slog.Logger
	Store  *store.Store
	PAS    *pas.Service
	// Hooks is the CDS Hooks (CRD) service.
	Hooks   *hooks.Service
	Handler http.Handler
	// Desk is the reviewer desk (web pages under /desk/).
	Desk *desk.Desk
	// Auth is the SMART Backend Services authorization server and the
	// verifier of access tokens and CDS Hooks JWTs.
	Auth *auth.Service
	// Metrics are the Prometheus series (served on PRIORA_METRICS_ADDR).
	Metrics *telemetry.Metrics
	// Validator checks FHIR against the PAS, CRD and US Core profiles; it
	// is loaded at start whatever Config.Validation says. Use Check to
	// apply the configured mode to a validation.
	Validator *profiles.Validator
	// Roster is the payer's member roster.
	Roster *members.Roster

	// Subscriptions manages PAS Subscriptions; its delivery workers run
	// from New until Close.
	Subscriptions *subscriptions.Service
	// UMEvents is the UM event feed and its webhooks; its workers run
	// from New until Close.
	UMEvents    *umevents.Service
	stopWorkers context.CancelFunc
	workersDone chan struct{}

	// outbound is the policy of requests to URLs clients name.
	outbound *outbound.Policy
	// rules is swapped whole on reload: a request reads it once and
	// finishes on the rules it started with.
	rules    atomic.Pointer[coverage.Rules]
	reloadMu sync.Mutex
	reloads  RulesStatus
	mu       sync.Mutex
	closed   bool
}

// RulesStatus is what the rules reloads did (GET /admin/rules).
type RulesStatus struct {
	Version    string    `json:"version"`
	File       string    `json:"file,omitempty"`
	Rules      int       `json:"rules"`
	LoadedAt   time.Time `json:"loadedAt"`
	Reloads    int       `json:"reloads"`
	Failures   int       `json:"failedReloads"`
	LastError  string    `json:"lastError,omitempty"`
	LastFailed time.Time `json:"lastFailedAt,omitzero"`
}

// New opens the store and builds every service.
func New(ctx context.Context, cfg Config) (*App, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Every line logged with a request's context carries its request id.
	log = reqlog.Logger(log)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	rules := cfg.Rules
	if rules == nil {
		var err error
		if cfg.RulesFile == "" {
			rules, err = coverage.Sample()
		} else {
			rules, err = coverage.Load(cfg.RulesFile)
		}
		if err != nil {
			return nil, err
		}
	}
	validator, err := loadValidator(log, cfg.Validation, cfg.Strict)
	if err != nil {
		return nil, err
	}
	metrics := cfg.Metrics
	if metrics == nil {
		metrics = telemetry.New()
	}
	st, err := store.Open(ctx, store.Options{URI: cfg.MongoURI, DataDir: cfg.DataDir, Database: cfg.Database, Logger: log,
		OnCommand: metrics.StoreOp})
	if err != nil {
		return nil, err
	}
	parser, err := fhir.NewParser()
	if err != nil {
		st.Close(context.Background())
		return nil, err
	}
	mode, err := members.ParseMode(cfg.Eligibility)
	if err != nil {
		st.Close(context.Background())
		return nil, err
	}
	policy, err := outbound.New(outbound.Config{Allow: cfg.Security.OutboundAllow, InsecureDev: cfg.Security.InsecureDev})
	if err != nil {
		st.Close(context.Background())
		return nil, err
	}
	a := &App{Config: cfg, Log: log, Store: st, Validator: validator, Metrics: metrics, outbound: policy}
	a.rules.Store(rules)
	a.reloads = RulesStatus{Version: rules.Version, File: cfg.RulesFile, Rules: len(rules.All()), LoadedAt: cfg.Now()}
	a.Roster = members.New(st, mode, cfg.Now)
	metrics.Registry().MustRegister(telemetry.NewQueueCollector(a.queueStats, 10*time.Second))
	metrics.Registry().MustRegister(telemetry.NewStoreCommandCollector(func() []telemetry.StoreCommand {
		var out []telemetry.StoreCommand
		for _, c := range st.CommandCounts() {
			out = append(out, telemetry.StoreCommand{Origin: c.Origin, Command: c.Command, Collection: c.Collection, N: c.N})
		}
		return out
	}))
	a.rulesLoaded(rules, false)
	a.PAS = pas.New(pas.Config{
		Roster:   a.Roster,
		PayerIDs: cfg.PayerIDs,
		Store:    st,
		Rules:    a.Rules,
		Parser:   parser,
		Validate: a.pasValidate(),
		Now:      cfg.Now,
		Log:      log,

		Decisions:       metrics,
		DuplicateWindow: cfg.DuplicateWindow,
	})
	a.Subscriptions, err = subscriptions.New(ctx, subscriptions.Config{
		Store: st, Parser: parser, BaseURL: cfg.BaseURL, Now: cfg.Now, Log: log, Options: cfg.Subscriptions, Outbound: policy,
		Deliveries: metrics,
	})
	if err != nil {
		st.Close(context.Background())
		return nil, err
	}
	a.UMEvents, err = umevents.New(ctx, umevents.Config{
		Store: st, BaseURL: cfg.BaseURL, Outbound: policy, Deadlines: a.PAS.MarkDeadlines,
		Counter: metrics, Now: cfg.Now, Log: log, Options: cfg.UMEvents,
	})
	if err != nil {
		st.Close(context.Background())
		return nil, err
	}
	if err := st.EnsureHookIndexes(ctx); err != nil {
		st.Close(context.Background())
		return nil, err
	}
	if err := a.startAuth(ctx); err != nil {
		st.Close(context.Background())
		return nil, err
	}
	a.Hooks, err = hooks.New(hooks.Config{
		Roster:         a.Roster,
		Rules:          a.Rules,
		Store:          st,
		PayerIDs:       cfg.PayerIDs,
		FetchTimeout:   cfg.HookFetchTimeout,
		Outbound:       policy,
		DefaultVersion: cfg.CRDVersion,
		Validate:       a.crdValidate(),
		Answers:        metrics,
		Now:            cfg.Now,
		Log:            log,
	})
	if err != nil {
		st.Close(context.Background())
		return nil, err
	}
	a.Desk, err = desk.New(desk.Config{Store: st, PAS: a.PAS, BaseURL: cfg.BaseURL, Log: log, Now: cfg.Now})
	if err != nil {
		st.Close(context.Background())
		return nil, err
	}
	a.Handler = server.New(server.Config{
		BaseURL: cfg.BaseURL,
		MaxBody: cfg.MaxBody,
		Version: cfg.Version,
		Log:     log,
		Store:   st,
		PAS:     a.PAS,
		Hooks:   a.Hooks,
		Roster:  a.Roster,
		Started: cfg.Now(),

		Tolerances: tolerances(cfg.Strict),

		Subscriptions: a.Subscriptions,
		UMEvents:      a.UMEvents,
		Desk:          a.Desk,

		Auth:           a.Auth,
		InsecureDev:    cfg.Security.InsecureDev,
		RateLimit:      cfg.Security.RateLimit,
		RateBurst:      cfg.Security.RateBurst,
		TLS:            cfg.Security.TLSCert != "",
		AuditRetention: cfg.Security.AuditRetention,
		Limits:         cfg.Limits,
		Requests:       metrics,

		ReloadRules: func() (any, error) {
			if _, err := a.ReloadRules(); err != nil {
				return nil, err
			}
			return a.RulesStatus(), nil
		},
		RulesStatus: func() any { return a.RulesStatus() },
	})
	wctx, stop := context.WithCancel(context.Background())
	a.stopWorkers, a.workersDone = stop, make(chan struct{})
	var workers sync.WaitGroup
	workers.Add(2)
	go func() { defer workers.Done(); a.Subscriptions.Run(wctx) }()
	go func() { defer workers.Done(); a.PAS.RunFinisher(wctx, time.Second) }()
	workers.Add(1)
	go func() { defer workers.Done(); a.UMEvents.Run(wctx) }()
	workers.Add(1)
	go func() { defer workers.Done(); a.Desk.RunSweeper(wctx, 5*time.Minute) }()
	workers.Add(1)
	go func() { defer workers.Done(); a.runSweeper(wctx, time.Minute) }()
	// Every package has created its collections by now: index them for
	// lookups by _id on the embedded engine (a no-op on MongoDB).
	if err := st.IndexCollections(ctx); err != nil {
		log.Warn("store: _id indexes not created", "err", err)
	}
	go func() { workers.Wait(); close(a.workersDone) }()
	return a, nil
}

// queueStats reads the review queue for the metrics.
func (a *App) queueStats(ctx context.Context) (telemetry.Queue, error) {
	now := a.Config.Now()
	st, err := a.Store.ReviewQueueStats(ctx, now)
	if err != nil {
		return telemetry.Queue{}, err
	}
	q := telemetry.Queue{Depth: st.Pended, Overdue: st.Overdue}
	if !st.Oldest.IsZero() {
		q.Oldest = now.Sub(st.Oldest)
	}
	return q, nil
}

// Rules returns the coverage rules in force.
func (a *App) Rules() *coverage.Rules { return a.rules.Load() }

// ReloadRules re-reads and validates the rules file and, when it is valid,
// puts it in force (requests in flight finish on the rules they started
// with). An invalid file keeps the running rules: the error says why,
// problem by problem with line numbers, and is logged. Without a rules
// file the shipped sample is reloaded; rules given in code cannot be.
func (a *App) ReloadRules() (*coverage.Rules, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	var (
		r   *coverage.Rules
		err error
	)
	switch {
	case a.Config.RulesFile != "":
		r, err = coverage.Load(a.Config.RulesFile)
	case a.Config.Rules != nil:
		err = errors.New("the rules were given at start, not read from a file: nothing to reload")
	default:
		r, err = coverage.Sample()
	}
	cur := a.rules.Load()
	if err != nil {
		a.Metrics.RulesLoaded(false, "", "")
		a.reloads.Failures++
		a.reloads.LastError, a.reloads.LastFailed = err.Error(), a.Config.Now()
		a.Log.Error("rules: reload refused; the running rules stay in force",
			"file", a.Config.RulesFile, "running_version", cur.Version, "failed_reloads", a.reloads.Failures, "err", err)
		return nil, err
	}
	a.rules.Store(r)
	a.rulesLoaded(r, true)
	a.reloads.Reloads++
	a.reloads.Version, a.reloads.Rules, a.reloads.LoadedAt = r.Version, len(r.All()), a.Config.Now()
	a.Log.Info("rules: reloaded", "file", a.Config.RulesFile, "version", r.Version, "previous_version", cur.Version, "rules", len(r.All()))
	return r, nil
}

// rulesLoaded puts the rules' version in the metrics (label and hash);
// reload counts an accepted reload, start-up does not.
func (a *App) rulesLoaded(r *coverage.Rules, reload bool) {
	label, hash, ok := strings.Cut(r.Version, "@")
	if !ok {
		label, hash = "", r.Version
	}
	if reload {
		a.Metrics.RulesLoaded(true, label, hash)
	} else {
		a.Metrics.RulesInForce(label, hash)
	}
}

// RulesStatus reports the rules in force and what reloads did.
func (a *App) RulesStatus() RulesStatus {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	return a.reloads
}

// Serve answers on ln until ctx ends, then drains in-flight requests for up
// to drain before returning.
func (a *App) Serve(ctx context.Context, ln net.Listener, drain time.Duration) error {
	lim := a.Config.Limits.WithDefaults()
	// Every request has PreAuthTimeout for its headers and body; once
	// authenticated it gets server.ReadTimeout (server/limits.go).
	hs := &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: min(5*time.Second, lim.PreAuthTimeout),
		ReadTimeout:       lim.PreAuthTimeout,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}
	if err := a.checkListener(ln); err != nil {
		return err
	}
	tc, err := a.tlsConfig()
	if err != nil {
		return err
	}
	ln = server.LimitListener(ln, lim.ConnsPerIP, tc, a.Metrics.ConnRefused)
	errc := make(chan error, 1)
	go func() { errc <- a.serve(hs, ln, tc) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.Log.Info("shutting down: draining in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close stops background work and closes the store. It is idempotent.
func (a *App) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	a.stopWorkers()
	<-a.workersDone
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return a.Store.Close(ctx)
}
