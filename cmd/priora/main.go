// Command priora runs the Priora prior-authorization server.
//
//	priora            serve (the default)
//	priora serve      the same
//	priora version    print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/priora/priora/coverage"
	"github.com/priora/priora/fhir"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/server"
	"github.com/priora/priora/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "priora:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// run is main without the process: it takes its arguments, environment and
// output streams, and returns when ctx ends or the server fails.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "priora", version)
		return nil
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
	return errUsage
}

const usage = `Usage: priora [command] [flags]

Commands:
  serve     run the server (default)
  version   print the version
  help      this text

Run "priora serve -h" for the server's flags; each has a PRIORA_* variable.
`

// app is a wired, running Priora: what serve starts and tests drive.
type app struct {
	cfg    *config
	log    *slog.Logger
	store  *store.Store
	server *server.Server
}

func newApp(ctx context.Context, cfg *config, logOut io.Writer) (*app, error) {
	level, _ := parseLevel(cfg.LogLevel)
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: level}))
	rules, err := loadRules(cfg.Rules)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, store.Options{URI: cfg.MongoURI, DataDir: cfg.DataDir, Logger: log})
	if err != nil {
		return nil, err
	}
	parser, err := fhir.NewParser()
	if err != nil {
		st.Close(context.Background())
		return nil, err
	}
	svc := pas.New(pas.Config{
		Store:  st,
		Rules:  func() *coverage.Rules { return rules },
		Parser: parser,
		Log:    log,
	})
	srv := server.New(server.Config{
		BaseURL: cfg.BaseURL,
		MaxBody: cfg.MaxBody,
		Version: version,
		Log:     log,
		Store:   st,
		PAS:     svc,
		Started: time.Now(),
	})
	return &app{cfg: cfg, log: log, store: st, server: srv}, nil
}

func (a *app) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.store.Close(ctx); err != nil {
		a.log.Warn("store close", "err", err)
	}
}

func loadRules(path string) (*coverage.Rules, error) {
	if path == "" {
		return coverage.Sample()
	}
	return coverage.Load(path)
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	cfg.print(stdout)
	a, err := newApp(ctx, cfg, stdout)
	if err != nil {
		return err
	}
	defer a.close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	return a.serve(ctx, ln, stdout)
}

// serve answers on ln until ctx ends, then drains in-flight requests.
func (a *app) serve(ctx context.Context, ln net.Listener, stdout io.Writer) error {
	hs := &http.Server{
		Handler:           a.server,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	if uri, ok := a.store.Embedded(); ok {
		a.log.Info("embedded store started", "uri", uri, "data_dir", a.cfg.DataDir)
	}
	a.log.Info("priora listening", "addr", ln.Addr().String(), "base_url", a.cfg.BaseURL, "version", version)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.log.Info("shutting down: draining in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
