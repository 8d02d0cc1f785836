package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/priora/priora/coverage"
	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/outbound"
	"github.com/priora/priora/members"
	"github.com/priora/priora/server"
	"github.com/priora/priora/store"
)

// config is everything Priora reads at start, from flags and environment
// (flags win). It is checked once, then printed with secrets masked.
type config struct {
	Addr     string
	BaseURL  string
	DataDir  string
	Rules    string
	MongoURI string
	LogLevel string
	MaxBody  int64
	// Validation is the profile validation mode: enforce, log or off.
	Validation    string
	CRDValidation string
	// Strict ("true") makes validation tolerate nothing.
	Strict string
	// Eligibility is what the member roster does to requests.
	Eligibility string
	// CRD (CDS Hooks): payers served, EHR query deadline, default version.
	PayerIDs         string
	CRDFetchTimeout  string
	CRDVersion       string
	DuplicateWindow  string
	duplicateWindow  time.Duration
	payers           []coverage.PayerID
	hookFetchTimeout time.Duration
	// Security (security.go).
	InsecureDev string
	ClientsFile string
	TLSCert     string
	TLSKey      string
	RateLimit   string
	security    app.Security
	// Limits (limits.go).
	MaxEntries, MaxArray, MaxJSONValues, SubmitConcurrency, MaxConnsPerIP, TrustedProxies string
	limits                                                                                server.Limits
	// Outbound requests and subscriptions (security.go).
	OutboundAllow    string
	MaxSubscriptions string
	maxSubscriptions int
	// UMDeadlineLead is how long before a decision deadline the UM
	// deadline-approaching event is recorded.
	UMDeadlineLead string
	umDeadlineLead time.Duration
	// MetricsAddr is the private listener for /metrics and pprof ("off": none).
	MetricsAddr string
}

// setting ties a field to its flag, environment variable and default.
type setting struct {
	flag, env, def, usage string
	secret                bool
	target                *string
}

func (c *config) settings() []setting {
	return []setting{
		{"addr", "PRIORA_ADDR", "127.0.0.1:8080", "listen address", false, &c.Addr},
		{"base-url", "PRIORA_BASE_URL", "", "public origin used in fullUrls and links (default http://<addr>)", false, &c.BaseURL},
		{"data-dir", "PRIORA_DATA_DIR", "./data", "directory for the embedded store", false, &c.DataDir},
		{"rules", "PRIORA_RULES", "", "coverage rules YAML file (default: the shipped sample)", false, &c.Rules},
		{"mongodb-uri", "MONGODB_URI", "", "MongoDB URI; empty starts the embedded store", true, &c.MongoURI},
		{"log-level", "PRIORA_LOG_LEVEL", "info", "debug, info, warn or error", false, &c.LogLevel},
		{"payer-ids", "PRIORA_PAYER_IDS", "", "Coverage.payor identifiers CRD and $submit answer for, comma-separated system|value or bare value (default: the rules file's payers; none = every payer)", false, &c.PayerIDs},
		{"crd-fetch-timeout", "PRIORA_CRD_FETCH_TIMEOUT", "2s", "deadline for CRD's queries to the EHR's FHIR server per hook call", false, &c.CRDFetchTimeout},
		{"duplicate-window", "PRIORA_DUPLICATE_WINDOW", "720h", "how close in time two requests for the same member and service code are flagged to reviewers as possible duplicates (e.g. 720h = 30 days)", false, &c.DuplicateWindow},
		{"crd-version", "PRIORA_CRD_VERSION", "2.2", "CRD version answered when a hook call requests none: 2.2, or 2.0 for the released Inferno CRD kit", false, &c.CRDVersion},
		{"insecure-dev", "PRIORA_INSECURE_DEV", "", "1 turns authentication OFF for development; refused unless the listen address is loopback", false, &c.InsecureDev},
		{"clients-file", "PRIORA_CLIENTS_FILE", "", "YAML file of clients registered (or replaced) at start", false, &c.ClientsFile},
		{"tls-cert", "PRIORA_TLS_CERT", "", "TLS certificate (PEM); with PRIORA_TLS_KEY Priora serves HTTPS only, TLS 1.2+", false, &c.TLSCert},
		{"tls-key", "PRIORA_TLS_KEY", "", "TLS private key (PEM)", false, &c.TLSKey},
		{"rate-limit", "PRIORA_RATE_LIMIT", "20,40", "requests per second per client and burst, RATE[,BURST]; 0 = no limit", false, &c.RateLimit},
		{"max-entries", "PRIORA_MAX_ENTRIES", "1000", "most entries in a request Bundle", false, &c.MaxEntries},
		{"max-array", "PRIORA_MAX_ARRAY", "10000", "longest JSON array in a request body", false, &c.MaxArray},
		{"max-json-values", "PRIORA_MAX_JSON_VALUES", "50000", "most JSON values in a request body", false, &c.MaxJSONValues},
		{"submit-concurrency", "PRIORA_SUBMIT_CONCURRENCY", "4", "$submit and $inquire requests worked on at once (more wait up to 10 s, then 503)", false, &c.SubmitConcurrency},
		{"max-conns-per-ip", "PRIORA_MAX_CONNS_PER_IP", "512", "open connections per client address (IPv6: per /64); 0 = no limit", false, &c.MaxConnsPerIP},
		{"trusted-proxies", "PRIORA_TRUSTED_PROXIES", "", "CIDRs of load balancers whose X-Forwarded-For is believed, comma-separated", false, &c.TrustedProxies},
		{"outbound-allow", "PRIORA_OUTBOUND_ALLOW", "", "targets of Subscription notifications and CRD EHR queries allowed although loopback, private or special-purpose, and over plain http: comma-separated CIDR prefixes, addresses and host:port", false, &c.OutboundAllow},
		{"max-subscriptions", "PRIORA_MAX_SUBSCRIPTIONS", "20", "most Subscriptions one organization may have", false, &c.MaxSubscriptions},
		{"validation", "PRIORA_VALIDATION", "enforce", "profile validation of PAS requests: enforce (reject errors with 400), log (log counts, accept) or off", false, &c.Validation},
		{"eligibility", "PRIORA_ELIGIBILITY", "auto", "member eligibility from the roster: auto (enforce once the roster holds a member), enforce, warn (flag to reviewers) or off", false, &c.Eligibility},
		{"metrics-addr", "PRIORA_METRICS_ADDR", "127.0.0.1:9464", "private listener for Prometheus /metrics and /debug/pprof (never the public one); off = none", false, &c.MetricsAddr},
		{"crd-validation", "PRIORA_CRD_VALIDATION", "off", "profile validation of CDS Hooks calls: off, log, or enforce (422 for CRD profile violations)", false, &c.CRDValidation},
		{"um-deadline-lead", "PRIORA_UM_DEADLINE_LEAD", "24h", "how long before a review's CMS-0057-F deadline the UM event deadline-approaching is sent", false, &c.UMDeadlineLead},
		{"strict", "PRIORA_STRICT", "false", "true makes validation tolerate nothing: the documented tolerances and known IG defects become errors", false, &c.Strict},
	}
}

// loadConfig reads flags from args and the environment through getenv.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("priora", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, s := range c.settings() {
		def := s.def
		if v := getenv(s.env); v != "" {
			def = v
		}
		fs.StringVar(s.target, s.flag, def, s.usage+" ["+s.env+"]")
	}
	maxBody := getenv("PRIORA_MAX_BODY")
	if maxBody == "" {
		maxBody = strconv.Itoa(10 << 20)
	}
	fs.StringVar(&maxBody, "max-body", maxBody, "largest request body in bytes [PRIORA_MAX_BODY]")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	n, err := strconv.ParseInt(maxBody, 10, 64)
	if err != nil || n < 1024 {
		return nil, fmt.Errorf("PRIORA_MAX_BODY must be a number of bytes ≥ 1024, got %q", maxBody)
	}
	c.MaxBody = n
	return c, c.check()
}

func (c *config) check() error {
	var errs []error
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		errs = append(errs, fmt.Errorf("PRIORA_ADDR %q is not host:port", c.Addr))
	}
	if c.BaseURL == "" {
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		_, port, _ := net.SplitHostPort(c.Addr)
		c.BaseURL = c.scheme() + "://" + net.JoinHostPort(host, port)
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
		errs = append(errs, fmt.Errorf("PRIORA_BASE_URL %q must be an origin such as https://pa.example.org", c.BaseURL))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	c.payers = parsePayerIDs(c.PayerIDs)
	if d, err := time.ParseDuration(c.DuplicateWindow); err != nil || d <= 0 || d > 366*24*time.Hour {
		errs = append(errs, fmt.Errorf("PRIORA_DUPLICATE_WINDOW %q must be a duration such as 720h (30 days), above zero and at most a year", c.DuplicateWindow))
	} else {
		c.duplicateWindow = d
	}
	if d, err := time.ParseDuration(c.CRDFetchTimeout); err != nil || d <= 0 || d > outbound.MaxTimeout {
		errs = append(errs, fmt.Errorf("PRIORA_CRD_FETCH_TIMEOUT %q must be a duration such as 2s (at most %s, the bound of every outbound request)", c.CRDFetchTimeout, outbound.MaxTimeout))
	} else {
		c.hookFetchTimeout = d
	}
	if d, err := time.ParseDuration(c.UMDeadlineLead); err != nil || d <= 0 || d > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("PRIORA_UM_DEADLINE_LEAD %q must be a duration such as 24h (more than 0, at most 168h)", c.UMDeadlineLead))
	} else {
		c.umDeadlineLead = d
	}
	if c.Strict != "true" && c.Strict != "false" {
		errs = append(errs, fmt.Errorf("PRIORA_STRICT %q must be true or false", c.Strict))
	}
	if c.CRDVersion != "2.2" && c.CRDVersion != "2.0" {
		errs = append(errs, fmt.Errorf("PRIORA_CRD_VERSION %q must be 2.2 or 2.0", c.CRDVersion))
	}
	switch c.Validation {
	case "enforce", "log", "off":
	default:
		errs = append(errs, fmt.Errorf("PRIORA_VALIDATION %q must be enforce, log or off", c.Validation))
	}
	switch c.CRDValidation {
	case "enforce", "log", "off":
	default:
		errs = append(errs, fmt.Errorf("PRIORA_CRD_VALIDATION %q must be enforce, log or off", c.CRDValidation))
	}
	if _, err := members.ParseMode(c.Eligibility); err != nil {
		errs = append(errs, fmt.Errorf("PRIORA_ELIGIBILITY: %w", err))
	}
	if c.MetricsAddr != "off" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("PRIORA_METRICS_ADDR %q is not host:port (or off)", c.MetricsAddr))
		} else if c.MetricsAddr == c.Addr {
			errs = append(errs, fmt.Errorf("PRIORA_METRICS_ADDR must differ from PRIORA_ADDR: metrics and pprof are never served publicly"))
		}
	}
	errs = append(errs, c.checkSecurity(host), c.checkLimits())
	if c.MongoURI == "" && c.DataDir == "" {
		errs = append(errs, errors.New("PRIORA_DATA_DIR is required for the embedded store"))
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("PRIORA_LOG_LEVEL %q must be debug, info, warn or error", s)
	}
	return l, nil
}

// print writes the effective configuration, secrets masked.
func (c *config) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Priora configuration:")
	for _, s := range c.settings() {
		v := *s.target
		if s.secret && v != "" {
			v = store.RedactURI(v)
		}
		if v == "" {
			switch s.env {
			case "MONGODB_URI":
				v = "(embedded store)"
			case "PRIORA_RULES":
				v = "(shipped sample rules)"
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\n", s.env, v)
	}
	fmt.Fprintf(tw, "  %s\t%d\n", "PRIORA_MAX_BODY", c.MaxBody)
	tw.Flush()
}

// parsePayerIDs reads "system|value,value2": a bare value matches any system.
func parsePayerIDs(s string) []coverage.PayerID {
	var out []coverage.PayerID
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if sys, val, ok := strings.Cut(part, "|"); ok {
			out = append(out, coverage.PayerID{System: strings.TrimSpace(sys), Value: strings.TrimSpace(val)})
		} else {
			out = append(out, coverage.PayerID{Value: part})
		}
	}
	return out
}
