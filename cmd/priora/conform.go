package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/priora/priora/conformance/suite"
)

const conformUsage = `Usage: priora conform --base URL [flags]

Runs the PAS and CRD conformance suite against a server, acting as an EHR:
it submits prior-authorization requests, subscribes to their results and
receives the notifications on its own listener, calls each CDS Hooks
service, and checks every answer against the IGs and their profiles.
Progress is printed as tests finish; the exit status is 1 when any test
fails.

Examples:
  priora conform --base http://localhost:8080
  priora conform --base https://payer.example.org --fhir-base https://payer.example.org/r4 \
      --client-id ehr-1 --client-key ehr-1.private.jwks.json --report report.html
  priora conform --base http://localhost:8080 --suite crd --report out.xml --report out.json

Flags:
`

// listFlag is a repeatable, comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// conform is `priora conform`: it runs the conformance suite and writes
// the requested reports.
func conform(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("priora conform", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), conformUsage)
		fs.PrintDefaults()
	}
	var cfg suite.Config
	var reports, only listFlag
	var keyFile, kid string
	var insecure bool
	fs.StringVar(&cfg.Base, "base", "", "server root URL (or --fhir-base for PAS and --cds-base for CRD)")
	fs.StringVar(&cfg.FHIRBase, "fhir-base", "", "FHIR base for PAS (default BASE/fhir)")
	fs.StringVar(&cfg.CDSBase, "cds-base", "", "CDS Hooks base; discovery is CDS-BASE/cds-services (default BASE)")
	fs.StringVar(&cfg.Suite, "suite", "all", "pas, crd or all")
	fs.StringVar(&cfg.Token, "token", getenv("PRIORA_CONFORM_TOKEN"), "static bearer token for every call [PRIORA_CONFORM_TOKEN]")
	fs.StringVar(&cfg.ClientID, "client-id", "", "client id for SMART Backend Services and CDS Hooks JWTs (with --client-key)")
	fs.StringVar(&keyFile, "client-key", "", "private key file (JWK, JWK Set or PEM) to sign client assertions and CDS Hooks JWTs")
	fs.StringVar(&kid, "kid", "", "key id: selects the key of a JWK Set, names a PEM key")
	fs.StringVar(&cfg.Scope, "scope", "system/*.cruds", "scope requested with SMART tokens")
	fs.StringVar(&cfg.Inputs, "inputs", "", "directory of inputs replacing the defaults of the same name (pas/*.json, crd/*.json)")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:0", "address of the suite's notification listener and mock EHR")
	fs.StringVar(&cfg.ListenURL, "listen-url", "", "URL at which the server reaches the listener (default http://LISTEN)")
	fs.DurationVar(&cfg.NotificationTimeout, "notification-timeout", 60*time.Second, "how long to wait for each subscription notification")
	fs.Var(&reports, "report", "write a report: FILE.json, FILE.xml (JUnit) or FILE.html; repeatable")
	fs.Var(&only, "only", "run only tests whose id starts with one of these prefixes (e.g. pas-2.3,crd-1)")
	fs.BoolVar(&cfg.RealData, "real-data", false, "send the PAS requests unmarked; by default they carry meta.security HTEST so that a production server keeps them out of its work queue and metrics")
	fs.BoolVar(&cfg.StrictMustSupport, "strict-must-support", false, "fail on every must-support element not shown, situational ones included (as Inferno does)")
	fs.BoolVar(&insecure, "insecure", false, "skip TLS certificate verification (test servers with self-signed certificates)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 || cfg.Base == "" && cfg.FHIRBase == "" && cfg.CDSBase == "" {
		fs.Usage()
		return errUsage
	}
	for _, r := range reports {
		switch strings.ToLower(r[strings.LastIndex(r, ".")+1:]) {
		case "json", "xml", "html", "htm":
		default:
			fmt.Fprintf(stderr, "--report %s: want a .json, .xml or .html file\n", r)
			return errUsage
		}
	}
	cfg.Only = only
	if keyFile != "" {
		if cfg.ClientID == "" {
			fmt.Fprintln(stderr, "--client-key needs --client-id")
			return errUsage
		}
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return err
		}
		if cfg.Key, err = suite.ParseSigningKey(b, kid); err != nil {
			return err
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // opted in with --insecure
	}
	cfg.HTTPClient = &http.Client{Timeout: 60 * time.Second, Transport: tr}
	cfg.Progress = stdout
	rep, err := suite.Run(ctx, cfg)
	if err != nil {
		return err
	}
	for _, r := range reports {
		if err := rep.WriteFile(r); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Report written to %s\n", r)
	}
	if rep.Failed() {
		return fmt.Errorf("conformance: %d of %d tests failed", rep.Counts.Fail, rep.Counts.Total())
	}
	return nil
}
