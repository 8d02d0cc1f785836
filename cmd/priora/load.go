package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/priora/priora/bench"
	"github.com/priora/priora/conformance/suite"
)

const loadUsage = `Usage: priora load [flags]

Drives CRD order-sign calls (full prefetch) and PAS $submit requests (PAS
IG and test-kit Bundles, each with fresh identifiers) against a running
Priora, at a fixed rate or flat out, and reports throughput, latency
percentiles, errors and the server's RSS. Results go to --out (JSON) and
--plot (SVG).

The server's per-client rate limit must be off for load runs:
  PRIORA_RATE_LIMIT=0 PRIORA_INSECURE_DEV=1 priora serve --data-dir /tmp/priora-load

Examples:
  priora load --scenario order-sign --duration 30s                 # flat out
  priora load --scenario order-sign --rate 2000 --duration 60s
  priora load --scenario submit --rate 200 --duration 60s --out submit.json --plot submit.svg
  priora load --mix order-sign=9,submit=1 --rate 1000 --duration 10m   # soak
  priora load --base http://127.0.0.1:8080,http://127.0.0.1:8081 ...  # two replicas
  priora load --client-id ehr-1 --client-key ehr-1.private.jwks.json ... # auth on

Flags:
`

// loadCmd is priora load.
func loadCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("priora load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), loadUsage)
		fs.PrintDefaults()
	}
	var (
		bases, scenario, mix, keyFile, kid, out, plot string
		cfg                                           bench.Config
		auth                                          bench.Auth
		quiet                                         bool
	)
	fs.StringVar(&bases, "base", "http://127.0.0.1:8080", "server root URL(s), comma-separated; requests go to each in turn")
	fs.StringVar(&scenario, "scenario", "order-sign", "order-sign or submit (or use --mix)")
	fs.StringVar(&mix, "mix", "", "weighted scenarios, e.g. order-sign=9,submit=1 (overrides --scenario)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "requests per second (open loop); 0 = flat out")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, "requests in flight, one connection each (default 4×CPUs flat out, up to 256 at a rate; keep it below the server's PRIORA_MAX_CONNS_PER_IP)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to measure")
	fs.Int64Var(&cfg.Requests, "requests", 0, "stop after this many requests (0 = duration only)")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "unmeasured warm-up before the run")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "server process to sample RSS from (default: the local process listening on the first --base)")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a base that is not a loopback address")
	fs.StringVar(&auth.Token, "token", getenv("PRIORA_LOAD_TOKEN"), "static bearer token for PAS requests [PRIORA_LOAD_TOKEN]")
	fs.StringVar(&auth.ClientID, "client-id", "", "client id for SMART Backend Services tokens and CDS Hooks JWTs (with --client-key)")
	fs.StringVar(&keyFile, "client-key", "", "client private key (JWK, JWK Set or PEM)")
	fs.StringVar(&kid, "kid", "", "key id: selects the key of a JWK Set, names a PEM key")
	fs.StringVar(&auth.Scope, "scope", "system/Claim.c system/ClaimResponse.r", "scope requested with SMART tokens")
	fs.StringVar(&out, "out", "", "write the result as JSON to this file (- for stdout)")
	fs.StringVar(&plot, "plot", "", "write the latency plot (SVG) to this file")
	fs.BoolVar(&quiet, "quiet", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	for _, b := range strings.Split(bases, ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.Bases = append(cfg.Bases, b)
		}
	}
	if mix == "" {
		mix = scenario + "=1"
	}
	cfg.Mix = map[string]int{}
	for _, part := range strings.Split(mix, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(w)
		if !ok || err != nil || n < 0 {
			fmt.Fprintf(stderr, "--mix %q: want name=weight,...\n", mix)
			return errUsage
		}
		cfg.Mix[name] = n
	}
	if keyFile != "" {
		if auth.ClientID == "" {
			fmt.Fprintln(stderr, "--client-key needs --client-id")
			return errUsage
		}
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return err
		}
		k, err := suite.ParseSigningKey(b, kid)
		if err != nil {
			return err
		}
		auth.Signer, auth.Alg, auth.KID = k.Signer, k.Alg, k.KID
	}
	if auth.Token != "" || auth.Signer != nil {
		cfg.Auth = &auth
	}
	if !quiet {
		cfg.Progress = stderr
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	res.Summary(stdout)
	if out != "" {
		if err := writeTo(out, stdout, res.WriteJSON); err != nil {
			return err
		}
	}
	if plot != "" {
		if err := writeTo(plot, stdout, res.WriteSVG); err != nil {
			return err
		}
	}
	return nil
}

func writeTo(name string, stdout io.Writer, write func(io.Writer) error) error {
	if name == "-" {
		return write(stdout)
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
