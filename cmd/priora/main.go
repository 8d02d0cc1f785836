// Command priora runs the Priora prior-authorization server.
//
//	priora            serve (the default)
//	priora serve      the same
//	priora validate   validate FHIR JSON files against the profiles
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

	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/subscriptions"
	"github.com/priora/priora/umevents"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) && !errors.Is(err, errInvalid) {
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
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		cmd, args = "version", args[1:]
	} else if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "validate":
		return validate(args, stdout, stderr)
	case "rules":
		return rulesCmd(args, stdout, stderr)
	case "clients":
		return clientsCmd(ctx, args, getenv, stdout, stderr)
	case "reviewers":
		return reviewersCmd(ctx, args, getenv, os.Stdin, stdout, stderr)
	case "members":
		return membersCmd(ctx, args, getenv, stdout, stderr)
	case "keys":
		return keysCmd(ctx, args, getenv, stdout, stderr)
	case "audit":
		return auditCmd(ctx, args, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionLine())
		return nil
	case "healthcheck":
		return healthcheck(ctx, args, stdout, stderr)
	case "conform":
		return conform(ctx, args, getenv, stdout, stderr)
	case "load":
		return loadCmd(ctx, args, getenv, stdout, stderr)
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
  validate  validate FHIR JSON files against the PAS/CRD profiles (priora validate FILE...)
  rules     check a coverage rules file or decide requests with it (priora rules check|test)
  clients   manage registered clients (priora clients add|list|disable|enable)
  reviewers manage reviewer desk accounts (priora reviewers add|list|disable|enable)
  members   the payer's member roster (priora members import FILE... | show MEMBER-ID)
  keys      make a client key pair (priora keys new) or rotate Priora's token signing key (priora keys rotate)
  audit     print the audit trail (priora audit [-client ID] [-since T] [-limit N])
  version   print the version and the VCS revision (also priora --version)
  healthcheck  probe /readyz (for container healthchecks)
  conform   run the PAS/CRD conformance suite against a server (priora conform --base URL)
  load      drive CRD and PAS load at a server and report latency (priora load -h)
  help      this text

Run "priora serve -h" for the server's flags; each has a PRIORA_* variable.
`

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	cfg.print(stdout)
	level, _ := parseLevel(cfg.LogLevel)
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: level}))
	a, err := app.New(ctx, app.Config{
		BaseURL:       cfg.BaseURL,
		DataDir:       cfg.DataDir,
		MongoURI:      cfg.MongoURI,
		RulesFile:     cfg.Rules,
		MaxBody:       cfg.MaxBody,
		Version:       buildVersion(),
		Log:           log,
		Validation:    cfg.Validation,
		CRDValidation: cfg.CRDValidation,
		Strict:        cfg.Strict == "true",
		Eligibility:   cfg.Eligibility,

		PayerIDs:         cfg.payers,
		HookFetchTimeout: cfg.hookFetchTimeout,
		DuplicateWindow:  cfg.duplicateWindow,
		UMEvents:         umevents.Options{DeadlineLead: cfg.umDeadlineLead},
		Security:         cfg.security,
		Limits:           cfg.limits,
		CRDVersion:       cfg.CRDVersion,
		Subscriptions:    subscriptions.Options{MaxPerTenant: cfg.maxSubscriptions},
	})
	if err != nil {
		return err
	}
	defer a.Close()
	reloadOnHangup(ctx, a)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	if _, ok := a.Store.Embedded(); ok {
		// No address: the engine answers on a private unix socket only.
		log.Info("embedded store started", "data_dir", cfg.DataDir)
	}
	if cfg.MetricsAddr != "off" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics listener: %w", err)
		}
		stopMetrics := serveMetrics(mln, a.Metrics.Handler(), log)
		defer stopMetrics()
		log.Info("metrics and pprof listening (private)", "addr", mln.Addr().String())
	}
	log.Info("priora listening", "addr", ln.Addr().String(), "base_url", cfg.BaseURL, "version", buildVersion())
	return a.Serve(ctx, ln, 30*time.Second)
}

// reloadOnHangup reloads the coverage rules and the clients file on SIGHUP
// until ctx ends. A hangup never ends the server; an invalid file keeps
// what is running (ReloadRules and ReloadClients log why).
func reloadOnHangup(ctx context.Context, a *app.App) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_, _ = a.ReloadRules()
				_ = a.ReloadClients(ctx)
			}
		}
	}()
}

// serveMetrics serves h on ln until the returned stop is called.
func serveMetrics(ln net.Listener, h http.Handler, log *slog.Logger) (stop func()) {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 2 * time.Minute}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener failed", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		<-done
	}
}
