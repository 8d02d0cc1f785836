// Package hooks is Priora's CDS Hooks service for Da Vinci Coverage
// Requirements Discovery (CRD STU 2.2.1, with a 2.0.1 mode for the released
// Inferno kit). It answers discovery, the six CRD hooks and feedback: it
// decodes a hook call into light structs, completes the prefetch from the
// EHR's FHIR API when something is missing, asks the coverage rules (the
// same rules PAS decides with) about every order, and answers with a
// coverage-information system action per order and the cards the rules
// call for. Each coverage assertion is stored so that a later PAS $submit
// citing its id can be linked to it.
//
// The package knows nothing of HTTP routing; the server package maps its
// *Error values to CDS Hooks error responses.
package hooks

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/priora/priora/coverage"
	"github.com/priora/priora/fhir"
	"github.com/priora/priora/internal/outbound"
	"github.com/priora/priora/members"
	"github.com/priora/priora/store"
)

// Recorder keeps what CRD must retain: a record of every call (CRD
// found-37, and the call's audit record) holding the coverage assertions
// it made (read back by PAS), and feedback. *store.Store implements it.
type Recorder interface {
	// RecordHookCall stores one call's record. durable: return only once
	// it is stored; otherwise it may be queued (and written by a clean
	// shutdown at the latest).
	RecordHookCall(ctx context.Context, c *store.HookCall, durable bool) error
	SaveHookFeedback(ctx context.Context, fs []store.HookFeedback) error
}

// Config wires a Service.
type Config struct {
	// Rules returns the coverage rules in force (they may be reloaded).
	Rules func() *coverage.Rules
	// Store records assertions, calls and feedback; nil records nothing
	// (benchmarks).
	Store Recorder
	// PayerIDs are the Coverage.payor identifiers this instance serves; when
	// empty the rules file's payers apply, and when both are empty every
	// payer is served.
	PayerIDs []coverage.PayerID
	// FetchTimeout bounds all EHR queries of one call together (default 2 s).
	FetchTimeout time.Duration
	// DefaultVersion is the CRD version answered when a call requests none:
	// "2.2" (default) or "2.0" (the released Inferno CRD server suite).
	DefaultVersion string
	// Outbound decides which fhirServer URLs may be queried and makes the
	// client that queries them [the strict policy: public https only].
	Outbound *outbound.Policy
	// MaxFetchBytes caps one EHR answer (default 8 MiB).
	MaxFetchBytes int64
	// Validate, when set, checks the FHIR resources of a call (context and
	// prefetch) against the CRD profiles and returns the violations of
	// CRD-specific rules; any makes the call unprocessable (422, hook-13).
	Validate func(ctx context.Context, body []byte, version string) []string
	Now      func() time.Time
	Log      *slog.Logger
	// Roster is the payer's member roster (nil: the EHR's Coverage is taken
	// at its word).
	Roster *members.Roster
	// Answers, when set, counts the coverage answers given (metrics).
	Answers AnswerCounter
}

// AnswerCounter is told of each order's coverage answer: the hook and the
// covered value of its coverage-information ("none" when no assessment
// was made).
type AnswerCounter interface {
	CRDAnswer(hook, covered string)
}

// Service answers CDS Hooks calls. It is safe for concurrent use.
type Service struct {
	cfg       Config
	log       *slog.Logger
	discovery []byte
	// client queries EHRs under the outbound policy.
	client *http.Client
}

// New returns a Service. It fails only on a bad configuration.
func New(cfg Config) (*Service, error) {
	if cfg.Rules == nil {
		return nil, errors.New("hooks: rules are required")
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 2 * time.Second
	}
	switch cfg.DefaultVersion {
	case "":
		cfg.DefaultVersion = crdVersion22
	case crdVersion22, crdVersion20:
	default:
		return nil, fmt.Errorf("hooks: CRD version %q must be 2.2 or 2.0", cfg.DefaultVersion)
	}
	if cfg.Outbound == nil {
		cfg.Outbound, _ = outbound.New(outbound.Config{}) // the zero Config is valid
	}
	if cfg.MaxFetchBytes <= 0 {
		cfg.MaxFetchBytes = 8 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	d, err := buildDiscovery()
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, log: cfg.Log, discovery: d, client: cfg.Outbound.Client(cfg.FetchTimeout, cfg.MaxFetchBytes)}, nil
}

// Discovery is the body of GET /cds-services: one service per hook with the
// standard prefetch, the CRD versions and the configuration options.
func (s *Service) Discovery() []byte { return s.discovery }

// Caller is who makes a call, once CDS client authentication knows it,
// and the audit facts of the call: its request id and the client's address.
type Caller struct {
	Tenant    string
	Client    string
	RequestID string
	Source    string
}

// errorf is a CDS Hooks call that cannot be answered: Invalid (400, also
// a hook-13 coverage problem), NotFound (unknown service),
// PreconditionFailed (required data unobtainable), Unprocessable (profile
// rules broken). The message is safe to show the client.
func errorf(k fhir.Kind, format string, args ...any) *fhir.Error {
	return fhir.Errorf(k, format, args...)
}

// internal wraps a failure of Priora's own: the client sees "internal
// server error", the log the cause.
func internal(err error) *fhir.Error {
	return &fhir.Error{Kind: fhir.Internal, Message: "internal server error", Err: err}
}

// Answer is a successful hook response.
type Answer struct {
	// Body is the CDS Hooks response JSON. It lives in a pooled buffer:
	// call Release once it is sent, and do not use Body after that.
	Body []byte
	// Assertions are the coverage-assertion-ids made.
	Assertions []string
	buf        *bytes.Buffer
}

// Release hands the answer's buffer back for reuse; Body is invalid after.
// Not calling it is safe (the buffer is then collected).
func (a *Answer) Release() {
	if a == nil || a.buf == nil {
		return
	}
	if a.buf.Cap() <= maxPooled {
		a.buf.Reset()
		respBufs.Put(a.buf)
	}
	a.buf, a.Body = nil, nil
}

// Call answers POST /cds-services/{serviceID}. Errors are *fhir.Error; every
// call, answered or not, is recorded (one record, also its audit record)
// and logged without patient data. A call that makes coverage assertions
// answers only once its record is stored; other records are written in
// the background.
func (s *Service) Call(ctx context.Context, serviceID string, who Caller, body []byte) (ans *Answer, err error) {
	start := s.cfg.Now()
	rec := &store.HookCall{ID: store.HookCallID(randomHex()), Received: start, Service: serviceID,
		Tenant: who.Tenant, Client: who.Client, RequestID: who.RequestID, Source: who.Source}
	stored := false
	defer func() {
		if !stored {
			s.finish(ctx, rec, start, err, false)
		}
	}()

	hook := hookOf(serviceID)
	if hook == "" {
		return nil, errorf(fhir.NotFound, "there is no CDS service %q", serviceID)
	}
	t0 := time.Now()
	c, err := s.decode(hook, body)
	if err != nil {
		return nil, err
	}
	c.callID = rec.ID
	rec.Hook, rec.HookInstance, rec.Version = hook, c.req.HookInstance, c.version
	if s.cfg.Validate != nil {
		if found := s.cfg.Validate(ctx, body, c.version); len(found) > 0 {
			return nil, errorf(fhir.Unprocessable, "the request's FHIR resources break CRD profile rules: %s", strings.Join(firstN(found, 5), "; "))
		}
	}
	rec.DecodeMicros = time.Since(t0).Microseconds()

	t1 := time.Now()
	err = c.gather(ctx)
	rec.Fetched, rec.FetchFailed = c.d.fetched, c.d.fetchFailed
	rec.PrefetchMicros = time.Since(t1).Microseconds()
	if err != nil {
		return nil, err
	}

	t2 := time.Now()
	resp, assertions := c.respond(ctx, who)
	rec.DecideMicros = time.Since(t2).Microseconds()
	rec.Orders, rec.Cards, rec.SystemActions = len(c.targets), len(resp.Cards), len(resp.SystemActions)
	if c.technical != "" {
		rec.Outcome = "technical"
	}
	ids := make([]string, len(assertions))
	for i := range assertions {
		ids[i] = assertions[i].ID
	}
	if s.cfg.Answers != nil {
		for _, as := range assertions {
			s.cfg.Answers.CRDAnswer(hook, as.Covered)
		}
		for range len(c.targets) - len(assertions) {
			s.cfg.Answers.CRDAnswer(hook, "none")
		}
	}
	rec.Assertions = ids
	buf := respBufs.Get().(*bytes.Buffer)
	if err := resp.writeJSON(buf); err != nil {
		buf.Reset()
		respBufs.Put(buf)
		return nil, internal(err)
	}
	if len(assertions) > 0 {
		// PAS relies on the assertions: the answer that hands out their ids
		// waits until the record holding them is stored.
		rec.Made = assertions
		stored = true
		if err := s.finish(ctx, rec, start, nil, true); err != nil {
			buf.Reset()
			respBufs.Put(buf)
			return nil, err
		}
	}
	return &Answer{Body: buf.Bytes(), Assertions: ids, buf: buf}, nil
}

// finish completes, stores and logs the call record. durable: wait until
// it is stored; when that fails, the call fails (err becomes an internal
// error, returned), and its record, without the assertions, is queued.
func (s *Service) finish(ctx context.Context, rec *store.HookCall, start time.Time, err error, durable bool) error {
	rec.TotalMicros = s.cfg.Now().Sub(start).Microseconds()
	complete(rec, err)
	var failed error
	if s.cfg.Store != nil {
		// The record is kept even when the client has gone.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if serr := s.cfg.Store.RecordHookCall(sctx, rec, durable); serr != nil {
			s.log.ErrorContext(sctx, "cds hook call not recorded", "hook_instance", rec.HookInstance, "err", serr)
			if durable {
				failed = internal(serr)
				err = failed
				rec.Made, rec.Assertions = nil, nil
				complete(rec, err)
				_ = s.cfg.Store.RecordHookCall(sctx, rec, false)
			}
		}
	}
	level := slog.LevelInfo
	if fhir.KindOf(err) == fhir.Internal && err != nil {
		level = slog.LevelError
	}
	attrs := []any{
		"service", rec.Service, "hook", rec.Hook, "hook_instance", rec.HookInstance, "version", rec.Version,
		"status", rec.Status, "outcome", rec.Outcome, "orders", rec.Orders, "cards", rec.Cards,
		"system_actions", rec.SystemActions, "fetched", rec.Fetched, "fetch_failed", rec.FetchFailed,
		"decode_us", rec.DecodeMicros, "prefetch_us", rec.PrefetchMicros, "decide_us", rec.DecideMicros, "total_us", rec.TotalMicros,
	}
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	s.log.Log(ctx, level, "cds hook call", attrs...)
	return failed
}

// complete sets the record's status and outcome for a call ending in err.
func complete(rec *store.HookCall, err error) {
	rec.Status = http.StatusOK
	if rec.Outcome == "" {
		rec.Outcome = "ok"
	}
	if err != nil {
		kind := fhir.KindOf(err)
		rec.Status, rec.Error = kind.Status(), fhir.SafeMessage(err)
		rec.Outcome = outcomeOf(kind)
	}
}

// outcomeOf is the call record's outcome for a failed call.
func outcomeOf(k fhir.Kind) string {
	switch k {
	case fhir.Invalid:
		return "invalid"
	case fhir.NotFound:
		return "not-found"
	case fhir.PreconditionFailed:
		return "precondition"
	case fhir.Unprocessable:
		return "unprocessable"
	case fhir.Internal, fhir.Unavailable:
		return "error"
	}
	return "rejected"
}

// checkFHIRServer checks the shape of a call's fhirServer: an http(s)
// FHIR base URL, without a query or fragment (anything appended to it
// would change what is asked of the EHR). Whether Priora may send the
// EHR's token there is for the outbound policy, asked only when a query
// is needed (see queryEHR), so that a call whose prefetch is complete is
// answered whatever its fhirServer.
func (s *Service) checkFHIRServer(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return errorf(fhir.Invalid, "fhirServer must be an https URL")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") {
		return errorf(fhir.Invalid, "fhirServer must be a FHIR base URL, without a query or fragment")
	}
	return nil
}

// decode reads and checks a hook call; anything malformed is a 400.
func (s *Service) decode(hook string, body []byte) (*call, error) {
	c := &call{s: s, hook: hook, d: newData(), rules: s.cfg.Rules(), now: s.cfg.Now()}
	if err := decodeRequest(body, &c.req); err != nil {
		return nil, errorf(fhir.Invalid, "the body is not a CDS Hooks request: %s", fhir.JSONProblem(err))
	}
	r := &c.req
	switch {
	case r.Hook == "":
		return nil, errorf(fhir.Invalid, "hook is required")
	case r.Hook != hook:
		return nil, errorf(fhir.Invalid, "this service answers %s, not %q", hook, r.Hook)
	case r.HookInstance == "":
		return nil, errorf(fhir.Invalid, "hookInstance is required")
	case r.Context == nil:
		return nil, errorf(fhir.Invalid, "context is required")
	case r.FHIRAuthorization != nil && r.FHIRServer == "":
		return nil, errorf(fhir.Invalid, "fhirServer is required with fhirAuthorization")
	}
	if r.FHIRServer != "" {
		if err := s.checkFHIRServer(r.FHIRServer); err != nil {
			return nil, err
		}
	}
	c.hc = *r.Context
	if err := c.checkContext(); err != nil {
		return nil, err
	}
	c.version = s.cfg.DefaultVersion
	if v, ok := r.Extension["davinci-crd.requestedVersion"]; ok {
		var rv string
		if unmarshal(v, &rv) == nil {
			switch {
			case strings.HasPrefix(rv, "2.0"):
				c.version = crdVersion20
			case strings.HasPrefix(rv, "2.1"), strings.HasPrefix(rv, "2.2"):
				c.version = crdVersion22
			}
		}
	}
	c.st = parseSettings(hook, r.Extension["davinci-crd.configuration"])
	c.d.loadPrefetch(r.Prefetch)
	return c, nil
}

// checkContext requires the context fields Priora needs for the hook.
func (c *call) checkContext() error {
	hc := &c.hc
	if hc.PatientID == "" {
		return errorf(fhir.Invalid, "context.patientId is required")
	}
	needBundle := func(name string, b *bundle) error {
		if b == nil {
			return errorf(fhir.Invalid, "context.%s is required", name)
		}
		if b.ResourceType != "Bundle" {
			return errorf(fhir.Invalid, "context.%s must be a Bundle", name)
		}
		return nil
	}
	switch c.hook {
	case OrderSign:
		return needBundle("draftOrders", hc.DraftOrders)
	case OrderSelect:
		return needBundle("draftOrders", hc.DraftOrders)
	case AppointmentBook:
		return needBundle("appointments", hc.Appointments)
	case OrderDispatch:
		if len(hc.DispatchedOrders) == 0 && hc.Order == "" {
			return errorf(fhir.Invalid, "context.dispatchedOrders (or, hook 1.0, context.order) is required")
		}
	case EncounterStart, EncounterDischarge:
		if hc.EncounterID == "" {
			return errorf(fhir.Invalid, "context.encounterId is required")
		}
	}
	return nil
}

// Feedback stores POST /cds-services/{serviceID}/feedback.
func (s *Service) Feedback(ctx context.Context, serviceID string, who Caller, body []byte) error {
	if hookOf(serviceID) == "" {
		return errorf(fhir.NotFound, "there is no CDS service %q", serviceID)
	}
	var f Feedback
	if err := unmarshal(body, &f); err != nil {
		return errorf(fhir.Invalid, "the body is not CDS Hooks feedback: %s", fhir.JSONProblem(err))
	}
	if len(f.Feedback) == 0 {
		return errorf(fhir.Invalid, "feedback must list at least one item")
	}
	now := s.cfg.Now()
	recs := make([]store.HookFeedback, 0, len(f.Feedback))
	for i, it := range f.Feedback {
		if it.Card == "" {
			return errorf(fhir.Invalid, "feedback[%d].card is required", i)
		}
		if it.Outcome != "accepted" && it.Outcome != "overridden" {
			return errorf(fhir.Invalid, "feedback[%d].outcome must be accepted or overridden", i)
		}
		r := store.HookFeedback{ID: newID("fb"), Received: now, Service: serviceID, Tenant: who.Tenant, Client: who.Client,
			Card: it.Card, Outcome: it.Outcome}
		for _, a := range it.AcceptedSuggestions {
			r.AcceptedSuggestions = append(r.AcceptedSuggestions, a.ID)
		}
		if o := it.OverrideReason; o != nil {
			r.UserComment = o.UserComment
			if o.Reason != nil {
				r.OverrideReason = o.Reason.System + "|" + o.Reason.Code
			}
		}
		if it.OutcomeTimestamp != "" {
			if t, err := time.Parse(time.RFC3339, it.OutcomeTimestamp); err == nil {
				r.OutcomeTimestamp = t
			}
		}
		recs = append(recs, r)
	}
	if s.cfg.Store == nil {
		return nil
	}
	if err := s.cfg.Store.SaveHookFeedback(ctx, recs); err != nil {
		return internal(err)
	}
	s.log.InfoContext(ctx, "cds hook feedback", "service", serviceID, "items", len(recs))
	return nil
}

// newID returns a random identifier with a prefix.
func newID(prefix string) string {
	return prefix + "-" + randomHex()
}

// randomHex is 80 random bits in hex.
func randomHex() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func firstN(list []string, n int) []string {
	if len(list) > n {
		return append(list[:n:n], fmt.Sprintf("and %d more", len(list)-n))
	}
	return list
}
