// Package server is Priora's HTTP face: routes, middleware, decoding and
// encoding, and the one place where errors become OperationOutcomes (or CDS
// Hooks errors) with the right status. Handlers are thin: they read the
// request, call a domain package and write its answer.
package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/fhir"
	"github.com/priora/priora/hooks"
	"github.com/priora/priora/internal/reqlog"
	"github.com/priora/priora/members"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/store"
	"github.com/priora/priora/subscriptions"
	"github.com/priora/priora/umevents"
)

// Config wires the server.
type Config struct {
	// BaseURL is the public origin, e.g. https://pa.payer.example; FHIR lives
	// under BaseURL/fhir.
	BaseURL string
	// MaxBody caps request bodies in bytes.
	MaxBody int64
	Version string
	Log     *slog.Logger
	Store   *store.Store
	PAS     *pas.Service
	// Hooks answers CDS Hooks (CRD) under /cds-services; nil serves none.
	Hooks *hooks.Service
	// Roster is the member roster behind /admin/members.
	Roster *members.Roster
	// Subscriptions serves the PAS topic Subscriptions.
	Subscriptions *subscriptions.Service
	// UMEvents serves the UM event feed (GET /review/events); nil serves none.
	UMEvents *umevents.Service
	Started  time.Time
	// Tolerances are what validation tolerates, one sentence each, listed
	// in the CapabilityStatement's documentation (empty under strict).
	Tolerances []string

	// Desk serves the reviewer desk under /desk/ (its own sign-in and
	// error pages); nil serves none.
	Desk http.Handler

	// Auth issues and verifies tokens (server/auth.go). With InsecureDev
	// unset, every protected route needs a token; a nil Auth then refuses
	// them all.
	Auth *auth.Service
	// InsecureDev turns authentication off (development on loopback only).
	InsecureDev bool
	// RateLimit is requests per second per client (per address before
	// authentication), with bursts of RateBurst; 0 is no limit.
	RateLimit float64
	RateBurst int
	// TLS says Priora is served over TLS (adds HSTS).
	TLS bool
	// AuditRetention is how long audit records are kept (default 6 years).
	AuditRetention time.Duration
	// Limits bound request bodies, concurrent PAS work and connections
	// (limits.go).
	Limits Limits

	// ReloadRules reloads the coverage rules (POST /admin/rules/reload)
	// and returns their status; an error keeps the running rules and is
	// answered 422. RulesStatus is GET /admin/rules. Nil serves neither.
	ReloadRules func() (any, error)
	RulesStatus func() any
	// Requests, when set, times every request by route, method and status
	// (the Prometheus metrics).
	Requests RequestObserver
}

// RequestObserver is told of every request once it is answered.
type RequestObserver interface {
	Request(route, method string, status int, d time.Duration)
}

// Server is Priora's HTTP handler.
type Server struct {
	cfg     Config
	echo    *echo.Echo
	log     *slog.Logger
	limiter *limiter
	// tokenLimiter limits POST /auth/token apart from every other route.
	tokenLimiter *limiter
	heavy        *gate
	// table is every registered route's requirement and error family, by
	// "METHOD /path" (routes.go); notFound holds the paths of the
	// not-found catch-alls echo adds to groups with middleware.
	table    map[string]routeInfo
	notFound map[string]bool
}

// New builds the server and registers every route.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.Log = reqlog.Logger(cfg.Log)
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 10 << 20
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	if cfg.AuditRetention <= 0 {
		cfg.AuditRetention = 6 * 365 * 24 * time.Hour
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	s := &Server{cfg: cfg, echo: e, log: cfg.Log, limiter: newLimiter(cfg.RateLimit, cfg.RateBurst),
		tokenLimiter: newLimiter(cfg.RateLimit, cfg.RateBurst), heavy: newGate(cfg.Limits.Submits),
		table: map[string]routeInfo{}, notFound: map[string]bool{}}
	e.HTTPErrorHandler = s.renderError
	e.Use(s.clientAddr, s.closeUnread, s.requestID, s.accessLog, s.recover, s.securityHeaders, s.transportSecurity)
	s.routes()
	return s
}

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

const fhirJSON = "application/fhir+json; charset=utf-8"

// writeFHIR sends a FHIR JSON body.
func writeFHIR(c echo.Context, status int, body []byte) error {
	return c.Blob(status, fhirJSON, body)
}

// readFHIR reads a FHIR JSON request body: the content type must be JSON,
// the body at most MaxBody bytes.
func (s *Server) readFHIR(c echo.Context) ([]byte, error) {
	r := c.Request()
	if ct := r.Header.Get(echo.HeaderContentType); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || !isJSON(mt) {
			return nil, fhir.Errorf(fhir.Unsupported, "content type %q is not supported; send application/fhir+json", ct)
		}
		if v, ok := params["fhirversion"]; ok && !isR4(v) {
			return nil, fhir.Errorf(fhir.Unsupported, "FHIR version %q is not supported; Priora reads FHIR R4 (fhirVersion=4.0)", v)
		}
	}
	body, err := readBody(c, s.cfg.MaxBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, fhir.Errorf(fhir.TooLarge, "the request body is larger than %d bytes", s.cfg.MaxBody)
		}
		return nil, fhir.Errorf(fhir.Invalid, "the request body could not be read")
	}
	if err := fhir.Scan(body, s.cfg.Limits.JSON); err != nil {
		return nil, err
	}
	return body, nil
}

// readBody reads the request body, at most max bytes (else an
// *http.MaxBytesError). A body that declares its length is read into one
// buffer of that size, not grown step by step as io.ReadAll does.
func readBody(c echo.Context, max int64) ([]byte, error) {
	r := c.Request()
	body := http.MaxBytesReader(c.Response(), r.Body, max)
	if n := r.ContentLength; n > 0 && n <= max {
		buf := bytes.NewBuffer(make([]byte, 0, n+bytes.MinRead))
		_, err := buf.ReadFrom(body)
		return buf.Bytes(), err
	}
	return io.ReadAll(body)
}

func isJSON(mt string) bool {
	return mt == "application/fhir+json" || mt == "application/json" || mt == "application/json+fhir"
}

// Shutdown is for tests that run the handler on their own listener.
func (s *Server) Shutdown(ctx context.Context) error { return s.echo.Shutdown(ctx) }
