package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Authorization is one prior-authorization request chain: the initial PAS
// request, every update to it, each item's current decision with its
// history, every ClaimResponse version, and the notification events those
// versions cause. It is one document so that a decision, the response it
// produces and the event announcing it are written together atomically.
type Authorization struct {
	ID        string    `bson:"_id"`
	Tenant    string    `bson:"tenant"`
	Submitter string    `bson:"submitter"`
	Version   int       `bson:"version"`
	Created   time.Time `bson:"created"`
	Updated   time.Time `bson:"updated"`
	// Status is "pended" while any item awaits review, "complete" when every
	// item is decided, "cancelled" when the request was withdrawn.
	Status string `bson:"status"`
	// Expedited marks urgent requests (72 h decision clock instead of 7 days).
	Expedited bool      `bson:"expedited"`
	DueAt     time.Time `bson:"dueAt"`

	// Keys clients use to find this chain again: "claim|<system>|<value>"
	// for each Claim.identifier and "url|<fullUrl>" for each Claim fullUrl.
	ClaimKeys []string `bson:"claimKeys"`
	// SubmissionKeys are the idempotency keys of every $submit in the chain.
	SubmissionKeys []string `bson:"submissionKeys"`
	// Inquiry and subscription matching.
	MemberIDs    []string `bson:"memberIds"`
	ProviderNPIs []string `bson:"providerNpis"`
	InsurerIDs   []string `bson:"insurerIds"`
	SenderIDs    []string `bson:"senderIds"`
	// RefNumbers are the numbers an inquiry may target the chain by (X12
	// REF-BB / REF-NT): Priora's authorization and review numbers, and the
	// authorization and administrative reference numbers the provider sent.
	RefNumbers []string `bson:"refNumbers"`

	Submissions []Submission `bson:"submissions"`
	Items       []Item       `bson:"items"`
	Responses   []Response   `bson:"responses"`
	// Events announce response versions made after the synchronous answer
	// (a reviewer's or a delayed rule's decision). They are appended in the
	// same write as the decision, so the two never part.
	Events []Event `bson:"events"`
	// Undispatched is true while some event has not been fanned out to
	// subscriptions; Dispatched is the number of the last event that has.
	Undispatched bool `bson:"undispatched"`
	Dispatched   int  `bson:"dispatched"`
	// NextAuto is the earliest time a delayed rule finishes a pended item
	// (zero when none is scheduled).
	NextAuto time.Time `bson:"nextAuto"`
	// LatestClaim is the chain's latest Claim (JSON) with its fullUrl, and
	// LatestBundleID the submitter's identifier of the Bundle that carried
	// it: what a response version made later is built from.
	LatestClaim        string `bson:"latestClaim"`
	LatestClaimFullURL string `bson:"latestClaimFullUrl"`
	LatestBundleID     string `bson:"latestBundleId"`
	// Echo holds the request resources a response must carry again
	// (patient, insurer, requestor, providers), with their client fullUrls.
	Echo []EchoEntry `bson:"echo"`
	// Summary fields for reviewers and metrics.
	Summary Summary `bson:"summary"`
}

// Submission is one $submit of the chain.
type Submission struct {
	Key              string    `bson:"key"`
	BundleIdentifier string    `bson:"bundleIdentifier"`
	Received         time.Time `bson:"received"`
	ClaimFullURL     string    `bson:"claimFullUrl"`
	ClaimIdentifiers []string  `bson:"claimIdentifiers"`
	Update           bool      `bson:"update"`
	Cancel           bool      `bson:"cancel"`
	// Response is the number of the Response this submission was answered with.
	Response int `bson:"response"`
}

// Item is one requested service line, traced by its Claim.item.sequence.
type Item struct {
	Sequence    int     `bson:"sequence"`
	System      string  `bson:"system"`
	Code        string  `bson:"code"`
	Display     string  `bson:"display,omitempty"`
	Quantity    float64 `bson:"quantity,omitempty"`
	Unit        string  `bson:"unit,omitempty"`
	ServiceFrom string  `bson:"serviceFrom,omitempty"`
	ServiceTo   string  `bson:"serviceTo,omitempty"`
	Cancelled   bool    `bson:"cancelled"`
	// CoverageAssertion is the CRD coverage-assertion-id the item was
	// submitted under, when it carried one Priora issued.
	CoverageAssertion string     `bson:"coverageAssertion,omitempty"`
	Decision          Decision   `bson:"decision"`
	History           []Decision `bson:"history,omitempty"`
	// ItemJSON is the Claim.item as last submitted.
	ItemJSON string `bson:"itemJson"`
}

// Decision is the outcome for one item, with who or what made it and why.
type Decision struct {
	// Action is approve, deny, pend, modify or cancel.
	Action string `json:"action,omitempty" bson:"action"`
	// ReviewAction is the X12 306 code: A1, A3, A4, A6, or C for cancelled.
	ReviewAction string   `json:"reviewAction,omitempty" bson:"reviewAction"`
	ReasonCodes  []string `json:"reasonCodes,omitempty" bson:"reasonCodes,omitempty"`
	Note         string   `json:"note,omitempty" bson:"note,omitempty"`
	RuleID       string   `json:"ruleId,omitempty" bson:"ruleId,omitempty"`
	Reason       string   `json:"reason,omitempty" bson:"reason,omitempty"`
	// AuthorizedQuantity is what a modify decision authorizes.
	AuthorizedQuantity float64 `json:"authorizedQuantity,omitempty" bson:"authorizedQuantity,omitempty"`
	AuthorizedFrom     string  `json:"authorizedFrom,omitempty" bson:"authorizedFrom,omitempty"`
	AuthorizedTo       string  `json:"authorizedTo,omitempty" bson:"authorizedTo,omitempty"`
	// ReviewNumber is the payer's number for this item's review (reviewAction.number).
	ReviewNumber string `json:"reviewNumber,omitempty" bson:"reviewNumber,omitempty"`
	// By is "rule:<id>", "reviewer:<npi or name>" or "client" (cancellations).
	By string    `json:"by,omitempty" bson:"by"`
	At time.Time `json:"at,omitzero" bson:"at"`
	// ReviewerNPI and ReviewerName are set for human decisions.
	ReviewerNPI  string `json:"reviewerNpi,omitempty" bson:"reviewerNpi,omitempty"`
	ReviewerName string `json:"reviewerName,omitempty" bson:"reviewerName,omitempty"`
	// After, on a pend decided by a delayed rule, is when the rule finishes it.
	After     time.Time `json:"after,omitzero" bson:"after,omitempty"`
	FinalRule string    `json:"finalRule,omitempty" bson:"finalRule,omitempty"`
	// RequestInfo lists LOINC attachment codes the payer asks the provider
	// to send while the item is pended (PAS "additional information").
	RequestInfo []string `json:"requestInfo,omitempty" bson:"requestInfo,omitempty"`
}

// Response is one version of the PAS Response Bundle for the chain.
type Response struct {
	Number  int       `bson:"number"`
	Created time.Time `bson:"created"`
	Outcome string    `bson:"outcome"`
	JSON    string    `bson:"json"`
}

// Event is a notification to deliver to matching subscriptions: the chain's
// response changed.
type Event struct {
	Number   int       `bson:"number"`
	Response int       `bson:"response"`
	Created  time.Time `bson:"created"`
}

// EchoEntry is a request resource carried into responses.
type EchoEntry struct {
	FullURL string `bson:"fullUrl"`
	Type    string `bson:"type"`
	// Role is patient, insurer, requestor or provider (the authorized,
	// rendering Practitioner or Organization).
	Role     string `bson:"role"`
	Resource string `bson:"resource"`
}

// Summary carries display fields for the review queue and metrics; no field
// of it is written to logs.
type Summary struct {
	PatientName  string   `bson:"patientName,omitempty"`
	MemberID     string   `bson:"memberId,omitempty"`
	ProviderName string   `bson:"providerName,omitempty"`
	InsurerName  string   `bson:"insurerName,omitempty"`
	Services     []string `bson:"services,omitempty"`
	Category     string   `bson:"category,omitempty"`
}

// AddEvent records that response version n is news for subscribers.
func (a *Authorization) AddEvent(response int, now time.Time) {
	a.Events = append(a.Events, Event{Number: len(a.Events) + 1, Response: response, Created: now})
	a.Undispatched = true
}

// CurrentResponse is the latest response version, or nil.
func (a *Authorization) CurrentResponse() *Response {
	if len(a.Responses) == 0 {
		return nil
	}
	return &a.Responses[len(a.Responses)-1]
}

// SubmissionByKey returns the submission with an idempotency key.
func (a *Authorization) SubmissionByKey(key string) (*Submission, bool) {
	for i := range a.Submissions {
		if a.Submissions[i].Key == key {
			return &a.Submissions[i], true
		}
	}
	return nil, false
}

// ResponseByNumber returns a response version.
func (a *Authorization) ResponseByNumber(n int) (*Response, bool) {
	for i := range a.Responses {
		if a.Responses[i].Number == n {
			return &a.Responses[i], true
		}
	}
	return nil, false
}

// RequestBundle is the raw body of one $submit, kept as received.
type RequestBundle struct {
	Key           string    `bson:"_id"`
	Tenant        string    `bson:"tenant"`
	Authorization string    `bson:"authorization"`
	Received      time.Time `bson:"received"`
	Body          string    `bson:"body"`
}

func (s *Store) ensureIndexes(ctx context.Context) error {
	idx := []struct {
		c    *mongo.Collection
		keys bson.D
	}{
		{s.authorizations, bson.D{{Key: "tenant", Value: 1}, {Key: "claimKeys", Value: 1}}},
		{s.authorizations, bson.D{{Key: "submissionKeys", Value: 1}}},
		{s.authorizations, bson.D{{Key: "memberIds", Value: 1}}},
		{s.authorizations, bson.D{{Key: "status", Value: 1}, {Key: "dueAt", Value: 1}}},
		{s.authorizations, bson.D{{Key: "undispatched", Value: 1}}},
		{s.authorizations, bson.D{{Key: "nextAuto", Value: 1}}},
		{s.bundles, bson.D{{Key: "authorization", Value: 1}}},
	}
	for _, i := range idx {
		if _, err := i.c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: i.keys}); err != nil {
			return fmt.Errorf("store: create index on %s: %w", i.c.Name(), err)
		}
	}
	return nil
}

// SaveRequestBundle stores a request body under its submission key. Saving
// the same key again is a no-op, so a retried request can replay it.
func (s *Store) SaveRequestBundle(ctx context.Context, b *RequestBundle) error {
	_, err := s.bundles.InsertOne(ctx, b)
	if err != nil && !isDuplicate(err) {
		return fmt.Errorf("store: save request bundle: %w", err)
	}
	return nil
}

// RequestBundle loads a stored request body.
func (s *Store) RequestBundle(ctx context.Context, key string) (*RequestBundle, error) {
	var b RequestBundle
	if err := s.bundles.FindOne(ctx, bson.D{{Key: "_id", Value: key}}).Decode(&b); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("store: load request bundle: %w", err)
	}
	return &b, nil
}

// CreateAuthorization inserts a new chain. ErrDuplicate means a chain with
// that ID exists already: the same submission was stored before.
func (s *Store) CreateAuthorization(ctx context.Context, a *Authorization) error {
	a.Version = 1
	if _, err := s.authorizations.InsertOne(ctx, a); err != nil {
		if isDuplicate(err) {
			return ErrDuplicate
		}
		return fmt.Errorf("store: create authorization: %w", err)
	}
	return nil
}

// UpdateAuthorization replaces the chain if nobody changed it since it was
// read at a.Version, and bumps the version. ErrConflict means somebody did:
// read it again and redo the change.
func (s *Store) UpdateAuthorization(ctx context.Context, a *Authorization) error {
	prev := a.Version
	a.Version = prev + 1
	res, err := s.authorizations.ReplaceOne(ctx, bson.D{{Key: "_id", Value: a.ID}, {Key: "version", Value: prev}}, a)
	if err != nil {
		a.Version = prev
		return fmt.Errorf("store: update authorization: %w", err)
	}
	if res.MatchedCount == 0 {
		a.Version = prev
		return ErrConflict
	}
	return nil
}

// Authorization loads a chain by ID within a tenant ("" = any tenant).
func (s *Store) Authorization(ctx context.Context, tenant, id string) (*Authorization, error) {
	f := bson.D{{Key: "_id", Value: id}}
	if tenant != "" {
		f = append(f, bson.E{Key: "tenant", Value: tenant})
	}
	return s.findAuthorization(ctx, f, nil)
}

// AuthorizationBySubmission finds the chain a submission key belongs to.
func (s *Store) AuthorizationBySubmission(ctx context.Context, tenant, key string) (*Authorization, error) {
	return s.findAuthorization(ctx, bson.D{{Key: "tenant", Value: tenant}, {Key: "submissionKeys", Value: key}}, nil)
}

// AuthorizationByClaimKey finds the newest chain holding any of keys.
func (s *Store) AuthorizationByClaimKey(ctx context.Context, tenant string, keys []string) (*Authorization, error) {
	if len(keys) == 0 {
		return nil, ErrNotFound
	}
	f := bson.D{{Key: "tenant", Value: tenant}, {Key: "claimKeys", Value: bson.D{{Key: "$in", Value: keys}}}}
	return s.findAuthorization(ctx, f, options.FindOne().SetSort(bson.D{{Key: "created", Value: -1}}))
}

func (s *Store) findAuthorization(ctx context.Context, f bson.D, opts *options.FindOneOptionsBuilder) (*Authorization, error) {
	var a Authorization
	var err error
	if opts != nil {
		err = s.authorizations.FindOne(ctx, f, opts).Decode(&a)
	} else {
		err = s.authorizations.FindOne(ctx, f).Decode(&a)
	}
	if err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("store: find authorization: %w", err)
	}
	return &a, nil
}

// AuthorizationsByMember finds chains of any tenant whose patient carries one
// of the member identifiers, newest first. PAS inquiries may come from
// systems other than the submitter (spec-52); callers must still require a
// provider match (spec-53) before showing anything.
func (s *Store) AuthorizationsByMember(ctx context.Context, memberIDs []string, limit int64) ([]*Authorization, error) {
	if len(memberIDs) == 0 {
		return nil, nil
	}
	cur, err := s.authorizations.Find(ctx,
		bson.D{{Key: "memberIds", Value: bson.D{{Key: "$in", Value: memberIDs}}}},
		options.Find().SetSort(bson.D{{Key: "created", Value: -1}}).SetLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("store: find by member: %w", err)
	}
	var out []*Authorization
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: find by member: %w", err)
	}
	return out, nil
}

// DueAutomaticDecisions returns chains whose delayed rules are due at now.
func (s *Store) DueAutomaticDecisions(ctx context.Context, now time.Time, limit int64) ([]*Authorization, error) {
	f := bson.D{{Key: "nextAuto", Value: bson.D{{Key: "$gt", Value: time.Time{}}, {Key: "$lte", Value: now}}}}
	cur, err := s.authorizations.Find(ctx, f, options.Find().SetSort(bson.D{{Key: "nextAuto", Value: 1}}).SetLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("store: due decisions: %w", err)
	}
	var out []*Authorization
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: due decisions: %w", err)
	}
	return out, nil
}

// ReviewFilter selects chains for the review queue.
type ReviewFilter struct {
	// Status is pended, complete, cancelled, or "" for all.
	Status string
	Tenant string
	Limit  int64
	// Sort is "due" (default: earliest deadline first) or "age" (oldest first).
	Sort string
}

// ReviewQueue lists chains for reviewers.
func (s *Store) ReviewQueue(ctx context.Context, f ReviewFilter) ([]*Authorization, error) {
	q := bson.D{}
	if f.Status != "" {
		q = append(q, bson.E{Key: "status", Value: f.Status})
	}
	if f.Tenant != "" {
		q = append(q, bson.E{Key: "tenant", Value: f.Tenant})
	}
	sort := bson.D{{Key: "dueAt", Value: 1}, {Key: "_id", Value: 1}}
	if f.Sort == "age" {
		sort = bson.D{{Key: "created", Value: 1}, {Key: "_id", Value: 1}}
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	cur, err := s.authorizations.Find(ctx, q, options.Find().SetSort(sort).SetLimit(f.Limit).
		SetProjection(bson.D{{Key: "responses", Value: 0}, {Key: "echo", Value: 0}, {Key: "latestClaim", Value: 0}}))
	if err != nil {
		return nil, fmt.Errorf("store: review queue: %w", err)
	}
	var out []*Authorization
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: review queue: %w", err)
	}
	return out, nil
}
