// Package pas implements Da Vinci Prior Authorization Support (STU 2.2.1)
// on the payer side: Claim/$submit with updates and cancellations,
// Claim/$inquire, and the decisions on pended requests. It knows nothing of
// HTTP; the server package calls it with request bodies and renders its
// answers and errors.
package pas

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/priora/priora/coverage"
	"github.com/priora/priora/fhir"
	"github.com/priora/priora/members"
	"github.com/priora/priora/store"
)

// Config wires a Service.
type Config struct {
	Store *store.Store
	// Rules returns the coverage rules in force (they may be reloaded).
	Rules  func() *coverage.Rules
	Parser *fhir.Parser
	// Validate, when set, checks a request Bundle against the PAS profiles
	// and returns the findings; errors among them reject the request.
	Validate Validate
	Now      func() time.Time
	Log      *slog.Logger
	// Roster is the member roster eligibility is checked against (nil:
	// eligibility off).
	Roster *members.Roster
	// PayerIDs are the payers this instance serves; empty uses the rules
	// file's payers (and empty there serves every payer).
	PayerIDs []coverage.PayerID
	// Decisions, when set, counts the decisions stored (telemetry.go).
	Decisions DecisionCounter
	// DuplicateWindow is how close in time two requests for the same
	// member and code are flagged as possible duplicates
	// (PRIORA_DUPLICATE_WINDOW; default DefaultDuplicateWindow).
	DuplicateWindow time.Duration
}

// Service answers PAS operations. It is safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger
	// backfilled is when this process last ran the deadline watch's
	// backfill (MarkDeadlines).
	backfillMu sync.Mutex
	backfilled time.Time
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: cfg.Log}
}

// Caller is who makes a request: the tenant (the client's organization) and
// the client itself.
type Caller struct {
	Tenant string
	Client string
	// Test is set for a client registered as a test client: everything it
	// submits is test data (kept out of the work queue's default view and
	// of the CMS-0057-F figures).
	Test bool
}

// Answer is a successful PAS answer.
type Answer struct {
	// Body is the FHIR JSON to send.
	Body []byte
	// Replayed is true when the same submission was answered before and the
	// stored answer is returned again.
	Replayed bool
	// Authorization is the chain's ID (for logs and audit).
	Authorization string
	// Outcome is the ClaimResponse outcome (complete or error).
	Outcome string
	// Rules says which rules version and rules decided the items
	// ("2026.12-sample@3f2a9c1b0d4e: cpap-osa, default"), for the audit
	// trail; empty when no rule decided (replays, business errors).
	Rules string
}

// rulesDecided summarizes the rules version and rules behind a chain's
// rule decisions made at now.
func rulesDecided(a *store.Authorization, now time.Time) string {
	version := ""
	var ids []string
	for _, it := range a.Items {
		d := it.Decision
		if !d.At.Equal(now) || d.RulesVersion == "" {
			continue
		}
		version = d.RulesVersion
		if !slices.Contains(ids, d.RuleID) {
			ids = append(ids, d.RuleID)
		}
	}
	if version == "" {
		return ""
	}
	return version + ": " + strings.Join(ids, ", ")
}

// submissionKey identifies one submission for idempotency: the same bytes
// under the same Bundle.identifier from the same tenant are the same
// submission. A different body under a reused identifier is a new one
// (conformance kits reuse identifiers across distinct requests).
func submissionKey(tenant, bundleID string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(bundleID))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// authorizationID derives a chain's ID from its first submission, so a
// concurrent duplicate of that submission collides on insert instead of
// creating a second chain.
func authorizationID(key string) string { return "PA" + key[:20] }
