package suite

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/priora/priora/conformance"
	"github.com/priora/priora/fhir"
	"github.com/priora/priora/profiles"
)

// Config configures a run.
type Config struct {
	// Base is the server's root URL. FHIRBase (PAS: Claim/$submit,
	// Subscription, .well-known/smart-configuration) defaults to
	// Base+"/fhir"; CDSBase (CRD: CDSBase+"/cds-services") defaults to Base.
	Base, FHIRBase, CDSBase string
	// Suite is "pas", "crd" or "all" (the default).
	Suite string
	// Token is a static bearer token for every FHIR call (and CDS Hooks
	// calls when there is no Key).
	Token string
	// ClientID and Key turn on SMART Backend Services (a token fetched
	// with a signed client assertion) and signed CDS Hooks JWTs (iss =
	// ClientID, aud = the service URL).
	ClientID string
	Key      *SigningKey
	// Scope is requested with SMART tokens (default "system/*.cruds").
	Scope string
	// Inputs is a directory whose files replace the default inputs of the
	// same name (see conformance.Inputs; inputs/README.md).
	Inputs string
	// Listen is the notification listener's address (default
	// 127.0.0.1:0); ListenURL is the URL the server reaches it at, when
	// that differs (a server elsewhere, a proxy).
	Listen, ListenURL string
	// NotificationTimeout bounds each wait for a subscription
	// notification (default 60 s).
	NotificationTimeout time.Duration
	// HTTPClient sends every request (default: 60 s timeout).
	HTTPClient *http.Client
	// Progress receives one line per test as it finishes and a summary.
	Progress io.Writer
	// Registry is the loaded profile registry (default: profiles.Load()).
	Registry *profiles.Registry
	// StrictMustSupport fails pas-3.1.3.02 and pas-3.2.3.01 for every
	// must-support element no response shows, situational ones included,
	// as Inferno's must-support tests do.
	StrictMustSupport bool
	// RealData leaves the suite's PAS requests unmarked. By default each
	// request Bundle carries the security label HTEST (test health data),
	// so a production server keeps them out of its work queue and its
	// CMS-0057-F figures.
	RealData bool
	// Only, when set, runs just the tests whose id starts with one of
	// these prefixes.
	Only []string
}

// session is one run's shared state: the configured client, validators,
// listener, inputs and what earlier tests learned.
type session struct {
	cfg    Config
	c      *client
	v      *profiles.Validator // PAS 2.2.1, CRD 2.0.1
	parser *fhir.Parser        // the base R4 parse of input checks
	v22    *profiles.Validator // CRD 2.2 (preview build)
	reg    *profiles.Registry
	l      *listener
	inputs fs.FS
	runID  string

	pas pasState
	crd crdState
}

// Run runs the chosen suites against the server and returns the report;
// err is for a run that could not start (bad configuration, no listener).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	s, err := newSession(cfg)
	if err != nil {
		return nil, err
	}
	defer s.l.close()
	var tests []Test
	switch cfg.Suite {
	case "pas":
		tests = s.pasTests()
	case "crd":
		tests = s.crdTests()
	case "all", "":
		tests = append(s.pasTests(), s.crdTests()...)
	default:
		return nil, fmt.Errorf("suite %q: want pas, crd or all", cfg.Suite)
	}
	if len(cfg.Only) > 0 {
		tests = filter(tests, cfg.Only)
	}
	rep := &Report{Suite: cmp.Or(cfg.Suite, "all"), Target: s.c.fhirBase, CDSBase: s.c.cdsBase, Started: time.Now()}
	p := &progress{w: cfg.Progress}
	if p.w != nil {
		fmt.Fprintf(p.w, "Priora conformance suite (%s) against %s", rep.Suite, s.c.fhirBase)
		if rep.Suite != "pas" {
			fmt.Fprintf(p.w, " and %s/cds-services", s.c.cdsBase)
		}
		fmt.Fprintf(p.w, "\nNotification listener at %s\n", s.l.notifyURL())
	}
	for _, t := range tests {
		r := run(ctx, t)
		rep.Results = append(rep.Results, r)
		rep.Counts.add(r.Status)
		p.result(r)
	}
	rep.Duration = time.Since(rep.Started)
	p.summary(rep)
	return rep, nil
}

func filter(tests []Test, prefixes []string) []Test {
	var out []Test
	for _, t := range tests {
		for _, p := range prefixes {
			if strings.HasPrefix(t.ID, p) {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

func newSession(cfg Config) (*session, error) {
	base := strings.TrimRight(cfg.Base, "/")
	fhirBase := strings.TrimRight(cmp.Or(cfg.FHIRBase, base+"/fhir"), "/")
	cdsBase := strings.TrimRight(cmp.Or(cfg.CDSBase, base), "/")
	needFHIR, needCDS := cfg.Suite != "crd", cfg.Suite != "pas"
	if base == "" && (needFHIR && cfg.FHIRBase == "" || needCDS && cfg.CDSBase == "") {
		return nil, errors.New("a base URL is required (or --fhir-base for PAS and --cds-base for CRD)")
	}
	if cfg.NotificationTimeout <= 0 {
		cfg.NotificationTimeout = 60 * time.Second
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	if cfg.Key != nil && cfg.ClientID == "" {
		return nil, errors.New("a client key needs a client id")
	}
	reg := cfg.Registry
	if reg == nil {
		var err error
		if reg, err = profiles.Load(); err != nil {
			return nil, fmt.Errorf("load profiles: %w", err)
		}
	}
	var in fs.FS = conformance.Inputs()
	if cfg.Inputs != "" {
		st, err := os.Stat(cfg.Inputs)
		if err != nil || !st.IsDir() {
			return nil, fmt.Errorf("inputs %q is not a directory", cfg.Inputs)
		}
		in = layered{top: os.DirFS(cfg.Inputs), bottom: in}
	}
	parser, err := fhir.NewParser()
	if err != nil {
		return nil, err
	}
	l, err := startListener(cfg.Listen, cfg.ListenURL)
	if err != nil {
		return nil, err
	}
	return &session{
		parser: parser,
		cfg:    cfg,
		c:      newClient(hc, fhirBase, cdsBase, cfg),
		reg:    reg,
		v:      reg.NewValidator(profiles.Options{}),
		v22:    reg.NewValidator(profiles.Options{CRDVersion: "2.2.0"}),
		l:      l,
		inputs: in,
		runID:  newID()[:8],
	}, nil
}

// layered reads a file from top when it is there, else from bottom; a
// glob that matches anything in top matches only there, so a tester's
// set of CRD requests or must-support bundles replaces the default set.
type layered struct{ top, bottom fs.FS }

func (l layered) Open(name string) (fs.File, error) {
	if f, err := l.top.Open(name); err == nil {
		return f, nil
	}
	return l.bottom.Open(name)
}

// input reads one input file.
func (s *session) input(name string) ([]byte, error) {
	b, err := fs.ReadFile(s.inputs, name)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", name, err)
	}
	return b, nil
}

// inputGlob lists the input files matching a pattern, sorted.
func (s *session) inputGlob(pattern string) []string {
	if l, ok := s.inputs.(layered); ok {
		if m, _ := fs.Glob(l.top, pattern); len(m) > 0 {
			sort.Strings(m)
			return m
		}
		m, _ := fs.Glob(l.bottom, pattern)
		sort.Strings(m)
		return m
	}
	m, _ := fs.Glob(s.inputs, pattern)
	sort.Strings(m)
	return m
}

// tlsCheck dials host with one TLS version and reports whether the
// handshake succeeded.
func tlsCheck(ctx context.Context, host string, version uint16) error {
	d := tls.Dialer{Config: &tls.Config{MinVersion: version, MaxVersion: version, InsecureSkipVerify: true}} //nolint:gosec // only the protocol version is probed
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", host)
	if err != nil {
		return err
	}
	return conn.Close()
}
