package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Collections of CRD (CDS Hooks) records. They are separate from the PAS
// authorizations: a coverage assertion is written once and never changes, a
// hook call record is an append-only log line with timings, and feedback is
// whatever the EHR sends back about our cards.
const (
	coverageAssertions = "coverageAssertions"
	hookCalls          = "hookCalls"
	hookFeedback       = "hookFeedback"
)

// CoverageAssertion is what CRD told an EHR about one order under one
// coverage: the coverage-information extension's decision, keyed by its
// coverage-assertion-id. PAS looks it up when a later $submit carries the id
// (Claim.item extension or supportingInfo), links the item to it and, when
// PASatisfied is true and the assertion has not expired, approves the item
// without review (gold carding).
type CoverageAssertion struct {
	// ID is the coverage-assertion-id sent to the EHR.
	ID string `bson:"_id"`
	// Tenant and Client identify the CDS client when the call was
	// authenticated (empty until CDS client JWTs are checked).
	Tenant string `bson:"tenant,omitempty"`
	Client string `bson:"client,omitempty"`
	// Hook and HookInstance are the call that made the assertion.
	Hook         string `bson:"hook"`
	HookInstance string `bson:"hookInstance"`
	// FHIRServer is the EHR's FHIR base URL named in the call.
	FHIRServer string `bson:"fhirServer,omitempty"`
	// Order is the EHR's reference to the annotated resource, such as
	// "ServiceRequest/123" or "Appointment/9".
	Order string `bson:"order"`
	// Codes are the order's codes (canonical systems) the decision was made for.
	Codes []AssertionCode `bson:"codes,omitempty"`
	// MemberID is the Coverage's subscriber or member identifier.
	MemberID string `bson:"memberId,omitempty"`
	// PatientID is the EHR's patient id (context.patientId).
	PatientID string `bson:"patientId,omitempty"`
	// Coverage is the EHR's reference to the Coverage; PayerIDs are the
	// payor identifiers as "system|value".
	Coverage string   `bson:"coverage,omitempty"`
	PayerIDs []string `bson:"payerIds,omitempty"`
	// Covered, PANeeded, DocNeeded and InfoNeeded are the extension's codes.
	Covered    string   `bson:"covered"`
	PANeeded   string   `bson:"paNeeded,omitempty"`
	DocNeeded  []string `bson:"docNeeded,omitempty"`
	InfoNeeded []string `bson:"infoNeeded,omitempty"`
	// PASatisfied is true when pa-needed is "satisfied": the payer waives
	// prior authorization (gold carding); SatisfiedPAID is the number sent
	// as satisfied-pa-id.
	PASatisfied   bool   `bson:"paSatisfied"`
	SatisfiedPAID string `bson:"satisfiedPaId,omitempty"`
	// GoldCardNPI is the ordering provider for whom prior authorization was
	// waived (the rule's goldCard list); empty when the rule waives it for
	// every provider. Quantity and PeriodStart/PeriodEnd are the order's
	// quantity and occurrence period as CRD saw them (zero when absent).
	// PAS approves an item citing the assertion only within these.
	GoldCardNPI string  `bson:"goldCardNpi,omitempty"`
	Quantity    float64 `bson:"quantity,omitempty"`
	PeriodStart string  `bson:"periodStart,omitempty"`
	PeriodEnd   string  `bson:"periodEnd,omitempty"`
	// RuleID is the coverage rule that decided ("default" when none matched).
	RuleID string `bson:"ruleId,omitempty"`
	// Reasons are the reason codes (e.g. gold-card, no-member-found).
	Reasons []string `bson:"reasons,omitempty"`
	// Date is when the assertion was made; Expires is its expiry-date (zero
	// when the assertion does not expire).
	Date    time.Time `bson:"date"`
	Expires time.Time `bson:"expires,omitzero"`
}

// AssertionCode is one code of an asserted order.
type AssertionCode struct {
	System  string `bson:"system"`
	Code    string `bson:"code"`
	Display string `bson:"display,omitempty"`
}

// Valid reports whether the assertion still holds at t.
func (a *CoverageAssertion) Valid(t time.Time) bool {
	return a.Expires.IsZero() || !t.After(a.Expires)
}

// HookCall is the record of one CDS Hooks call: who called which service,
// how long each step took and what was answered. It holds no patient data.
type HookCall struct {
	ID           string    `bson:"_id"`
	Received     time.Time `bson:"received"`
	Service      string    `bson:"service"`
	Hook         string    `bson:"hook"`
	HookInstance string    `bson:"hookInstance"`
	Tenant       string    `bson:"tenant,omitempty"`
	Client       string    `bson:"client,omitempty"`
	// Version is the CRD version the call was answered under ("2.2", "2.0").
	Version string `bson:"version,omitempty"`
	// Status is the HTTP status answered.
	Status int `bson:"status"`
	// Outcome summarises the answer: "ok", "technical" (some EHR data could
	// not be had), or the error class ("invalid", "precondition", ...).
	Outcome string `bson:"outcome"`
	// Error is the client-safe error message of a failed call.
	Error string `bson:"error,omitempty"`
	// Orders, Cards and SystemActions count what was evaluated and answered.
	Orders        int `bson:"orders"`
	Cards         int `bson:"cards"`
	SystemActions int `bson:"systemActions"`
	// Fetched counts the FHIR queries made to the EHR; FetchFailed those
	// that failed.
	Fetched     int `bson:"fetched"`
	FetchFailed int `bson:"fetchFailed"`
	// Assertions are the coverage-assertion-ids made.
	Assertions []string `bson:"assertions,omitempty"`
	// Durations in microseconds.
	DecodeMicros   int64 `bson:"decodeUs"`
	PrefetchMicros int64 `bson:"prefetchUs"`
	DecideMicros   int64 `bson:"decideUs"`
	TotalMicros    int64 `bson:"totalUs"`
}

// HookFeedback is one feedback item an EHR posted about a card.
type HookFeedback struct {
	ID       string    `bson:"_id"`
	Received time.Time `bson:"received"`
	Service  string    `bson:"service"`
	Tenant   string    `bson:"tenant,omitempty"`
	Client   string    `bson:"client,omitempty"`
	// Card is the uuid of the card the feedback is about.
	Card string `bson:"card"`
	// Outcome is "accepted" or "overridden".
	Outcome             string    `bson:"outcome"`
	AcceptedSuggestions []string  `bson:"acceptedSuggestions,omitempty"`
	OverrideReason      string    `bson:"overrideReason,omitempty"` // "system|code"
	UserComment         string    `bson:"userComment,omitempty"`
	OutcomeTimestamp    time.Time `bson:"outcomeTimestamp,omitzero"`
}

// EnsureHookIndexes creates the indexes of the CRD collections. It is
// idempotent; the hooks service calls it once when it is built.
func (s *Store) EnsureHookIndexes(ctx context.Context) error {
	idx := []struct {
		coll string
		keys bson.D
	}{
		{hookCalls, bson.D{{Key: "received", Value: 1}}},
		{hookCalls, bson.D{{Key: "hookInstance", Value: 1}}},
		{hookFeedback, bson.D{{Key: "card", Value: 1}}},
	}
	for _, i := range idx {
		if err := s.createIndexes(ctx, s.db.Collection(i.coll), mongo.IndexModel{Keys: i.keys}); err != nil {
			return err
		}
	}
	return nil
}

// SaveCoverageAssertions stores the assertions of one hook call in one
// write. Saving an assertion whose ID exists is an error (ErrDuplicate):
// IDs are random and never reused.
func (s *Store) SaveCoverageAssertions(ctx context.Context, as []CoverageAssertion) error {
	if len(as) == 0 {
		return nil
	}
	docs := make([]any, len(as))
	for i := range as {
		docs[i] = &as[i]
	}
	if err := s.insert(ctx, s.db.Collection(coverageAssertions), docs...); err != nil {
		if isDuplicate(err) {
			return ErrDuplicate
		}
		return fmt.Errorf("store: save coverage assertions: %w", err)
	}
	return nil
}

// CoverageAssertion returns the assertion with a coverage-assertion-id, or
// ErrNotFound.
func (s *Store) CoverageAssertion(ctx context.Context, id string) (*CoverageAssertion, error) {
	return byID[CoverageAssertion](ctx, s.db.Collection(coverageAssertions), id, "coverage assertion")
}

// SaveHookCall appends a hook call record.
func (s *Store) SaveHookCall(ctx context.Context, c *HookCall) error {
	if err := s.insert(ctx, s.db.Collection(hookCalls), c); err != nil {
		return fmt.Errorf("store: save hook call: %w", err)
	}
	return nil
}

// HookCalls returns the records of calls received at or after since, oldest
// first, at most limit of them (for metrics and disputes).
func (s *Store) HookCalls(ctx context.Context, since time.Time, limit int) ([]HookCall, error) {
	opts := options.Find().SetSort(bson.D{{Key: "received", Value: 1}}).SetLimit(int64(limit))
	cur, err := s.db.Collection(hookCalls).Find(ctx, bson.D{{Key: "received", Value: bson.D{{Key: "$gte", Value: since}}}}, opts)
	if err != nil {
		return nil, fmt.Errorf("store: find hook calls: %w", err)
	}
	var out []HookCall
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: read hook calls: %w", err)
	}
	return out, nil
}

// SaveHookFeedback stores feedback items; the same card may get feedback
// more than once, and each is kept.
func (s *Store) SaveHookFeedback(ctx context.Context, fs []HookFeedback) error {
	if len(fs) == 0 {
		return nil
	}
	docs := make([]any, len(fs))
	for i := range fs {
		docs[i] = &fs[i]
	}
	if _, err := s.db.Collection(hookFeedback).InsertMany(ctx, docs); err != nil {
		return fmt.Errorf("store: save hook feedback: %w", err)
	}
	return nil
}

// HookFeedbackFor returns the feedback stored about a card.
func (s *Store) HookFeedbackFor(ctx context.Context, card string) ([]HookFeedback, error) {
	cur, err := s.db.Collection(hookFeedback).Find(ctx, bson.D{{Key: "card", Value: card}})
	if err != nil {
		return nil, fmt.Errorf("store: find hook feedback: %w", err)
	}
	var out []HookFeedback
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: read hook feedback: %w", err)
	}
	return out, nil
}
