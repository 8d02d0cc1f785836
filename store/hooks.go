package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Collections of CRD (CDS Hooks) records. They are separate from the PAS
// authorizations. Each call is one record in hookCalls: what was called,
// by whom, timings, the outcome, the audit facts (request id, source
// address) and the coverage assertions made, which never change. It is
// the call's only write. Feedback is whatever the EHR sends back about our
// cards. coverageAssertions holds the assertions of earlier versions (one
// document each), still read by CoverageAssertion.
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
	// RulesVersion is the coverage rules version (label@hash) that decided.
	RulesVersion string `bson:"rulesVersion,omitempty"`
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
	// Assertions are the coverage-assertion-ids made; Made are the
	// assertions themselves (AssertionID ties each id to this record).
	Assertions []string            `bson:"assertions,omitempty"`
	Made       []CoverageAssertion `bson:"made,omitempty"`
	// RequestID and Source (the client's address) make the record the
	// call's audit record too (Audit lists it as type "cds-hook").
	RequestID string `bson:"requestId,omitempty"`
	Source    string `bson:"source,omitempty"`
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

// HookCallID is a new call record id; AssertionID(call, n) names its n-th
// coverage assertion, so that the id a PAS request cites leads to the
// record by _id (the embedded engine's one indexed lookup).
func HookCallID(random string) string { return "hc-" + random }

// AssertionID is the id of the n-th coverage assertion of the call record
// with id callID ("hc-R" gives "crd-R-n").
func AssertionID(callID string, n int) string {
	return "crd-" + strings.TrimPrefix(callID, "hc-") + "-" + strconv.Itoa(n)
}

// callOfAssertion is the call record id of an AssertionID.
func callOfAssertion(id string) (string, bool) {
	rest, ok := strings.CutPrefix(id, "crd-")
	i := strings.LastIndexByte(rest, '-')
	if !ok || i <= 0 {
		return "", false
	}
	if _, err := strconv.Atoi(rest[i+1:]); err != nil {
		return "", false
	}
	return "hc-" + rest[:i], true
}

// RecordHookCall stores the record of one hook call with the coverage
// assertions it made, as one document. durable: it returns once the
// record is stored (an answer that hands out assertion ids waits for it,
// since PAS will look them up); otherwise it queues the record for the
// next group commit and returns at once (Close writes what is queued).
func (s *Store) RecordHookCall(ctx context.Context, c *HookCall, durable bool) error {
	doc, err := packHookCall(c)
	if err != nil {
		return fmt.Errorf("store: record hook call: %w", err)
	}
	if !durable {
		s.insertLater(s.db.Collection(hookCalls), "hook call record", doc)
		return nil
	}
	if err := s.insert(ctx, s.db.Collection(hookCalls), doc); err != nil {
		return fmt.Errorf("store: record hook call: %w", err)
	}
	return nil
}

// How a call record is stored. The fields the store filters and sorts on
// are fields of the document; the rest of the record, and the assertions
// apart (the audit trail and the metrics never read them), are each one
// BSON value in a binary field. One call record is written per CDS Hooks
// call, and the embedded engine's cost of an insert grows with the number
// of fields it must describe and index: packed, a record with two
// assertions is 6 fields instead of about 80. Records written before
// (schema 2, all fields) are read as they are.
type hookCallDoc struct {
	ID       string    `bson:"_id"`
	Received time.Time `bson:"received"`
	Tenant   string    `bson:"tenant,omitempty"`
	Client   string    `bson:"client,omitempty"`
	// Rec is the HookCall without Made; MadeRec is madeDoc.
	Rec     []byte `bson:"rec"`
	MadeRec []byte `bson:"madeRec,omitempty"`
}

type madeDoc struct {
	Made []CoverageAssertion `bson:"made"`
}

// storedHookCall reads a record in either form.
type storedHookCall struct {
	HookCall `bson:",inline"`
	Rec      []byte `bson:"rec,omitempty"`
	MadeRec  []byte `bson:"madeRec,omitempty"`
}

func packHookCall(c *HookCall) (*hookCallDoc, error) {
	rest := *c
	rest.Made = nil
	rec, err := bson.Marshal(&rest)
	if err != nil {
		return nil, err
	}
	doc := &hookCallDoc{ID: c.ID, Received: c.Received, Tenant: c.Tenant, Client: c.Client, Rec: rec}
	if len(c.Made) > 0 {
		if doc.MadeRec, err = bson.Marshal(madeDoc{Made: c.Made}); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

// unpack is the record: the packed fields decoded, or the record as
// written by an earlier version.
func (d *storedHookCall) unpack() (HookCall, error) {
	c := d.HookCall
	if d.Rec != nil {
		c = HookCall{}
		if err := bson.Unmarshal(d.Rec, &c); err != nil {
			return c, fmt.Errorf("store: hook call record %s: %w", d.ID, err)
		}
	}
	if d.MadeRec != nil {
		var m madeDoc
		if err := bson.Unmarshal(d.MadeRec, &m); err != nil {
			return c, fmt.Errorf("store: hook call record %s: %w", d.ID, err)
		}
		c.Made = m.Made
	}
	return c, nil
}

// readHookCalls decodes a cursor of records in either form.
func readHookCalls(ctx context.Context, cur *mongo.Cursor) ([]HookCall, error) {
	var docs []storedHookCall
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]HookCall, len(docs))
	for i := range docs {
		c, err := docs[i].unpack()
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

// SaveCoverageAssertions stores the assertions of one hook call in one
// write, in the collection of earlier versions (tests and imports). Saving an assertion whose ID exists is an error (ErrDuplicate):
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
// ErrNotFound: from its call record, or else (an id of an earlier version)
// from the assertions collection.
func (s *Store) CoverageAssertion(ctx context.Context, id string) (*CoverageAssertion, error) {
	if call, ok := callOfAssertion(id); ok {
		var doc storedHookCall
		err := s.db.Collection(hookCalls).FindOne(ctx, bson.D{{Key: "_id", Value: call}},
			options.FindOne().SetProjection(bson.D{{Key: "made", Value: 1}, {Key: "madeRec", Value: 1}})).Decode(&doc)
		var rec HookCall
		if err == nil {
			rec, err = doc.unpack()
		}
		switch {
		case err == nil:
			for i := range rec.Made {
				if rec.Made[i].ID == id {
					return &rec.Made[i], nil
				}
			}
		case !errors.Is(err, mongo.ErrNoDocuments):
			return nil, fmt.Errorf("store: load coverage assertion: %w", err)
		}
	}
	return byID[CoverageAssertion](ctx, s.db.Collection(coverageAssertions), id, "coverage assertion")
}

// SaveHookCall appends a hook call record and waits until it is stored.
func (s *Store) SaveHookCall(ctx context.Context, c *HookCall) error {
	return s.RecordHookCall(ctx, c, true)
}

// HookCalls returns the records of calls received at or after since, oldest
// first, at most limit of them (for metrics and disputes).
func (s *Store) HookCalls(ctx context.Context, since time.Time, limit int) ([]HookCall, error) {
	opts := options.Find().SetSort(bson.D{{Key: "received", Value: 1}}).SetLimit(int64(limit)).
		SetProjection(bson.D{{Key: "made", Value: 0}, {Key: "madeRec", Value: 0}})
	cur, err := s.db.Collection(hookCalls).Find(ctx, bson.D{{Key: "received", Value: bson.D{{Key: "$gte", Value: since}}}}, opts)
	if err != nil {
		return nil, fmt.Errorf("store: find hook calls: %w", err)
	}
	out, err := readHookCalls(ctx, cur)
	if err != nil {
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
