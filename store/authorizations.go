package store

import "time"

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
	Expedited bool `bson:"expedited"`
	// Test marks test data (HTEST, or a test client): left out of the
	// review queue's default view, queue metrics and CMS-0057-F figures.
	Test  bool      `bson:"test,omitempty"`
	DueAt time.Time `bson:"dueAt"`

	// Keys clients use to find this chain again: "claim|<system>|<value>"
	// for each Claim.identifier and "url|<fullUrl>" for each Claim fullUrl.
	ClaimKeys []string `bson:"claimKeys"`
	// SubmissionKeys are the idempotency keys of every $submit in the chain.
	SubmissionKeys []string `bson:"submissionKeys"`
	// Patient identifies the chain's patient for $inquire (PAS spec-53).
	Patient PatientMatch `bson:"patient"`
	// Inquiry and subscription matching.
	MemberIDs    []string `bson:"memberIds"`
	ProviderNPIs []string `bson:"providerNpis"`
	InsurerIDs   []string `bson:"insurerIds"`
	SenderIDs    []string `bson:"senderIds"`
	// RefNumbers are the numbers an inquiry may target the chain by (X12
	// REF-BB / REF-NT): Priora's authorization and review numbers, and the
	// authorization and administrative reference numbers the provider sent.
	RefNumbers []string `bson:"refNumbers"`

	// Eligibility is what the member roster said of the request's member
	// (nil when eligibility checking was off).
	Eligibility *Eligibility `bson:"eligibility,omitempty"`

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
	// UMEvents are the utilization-management events of the chain (pend
	// created, information received, deadline approaching, decided, ...),
	// for the payer's own UM system (umevents.go). Like Events they are
	// appended in the same write as the change they announce.
	UMEvents []UMEvent `bson:"umEvents,omitempty"`
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

	// Work queue (pas/queue.go). State is the review state, derived from
	// the items and the fields below on every write: new, in-review,
	// awaiting-info, reopened, decided or cancelled.
	State string `bson:"state,omitempty"`
	// Assignee is the reviewer working the request; nil when unassigned.
	Assignee *Assignee `bson:"assignee,omitempty"`
	// InfoReceived is when the provider last sent supporting information
	// after a request for it; NewInfo are the Claim.supportingInfo
	// sequences that arrived then, marked new until the next decision.
	InfoReceived time.Time `bson:"infoReceived,omitempty"`
	NewInfo      []int     `bson:"newInfo,omitempty"`
	// SupportingDigests identify each supportingInfo of the latest Claim
	// ("<sequence>|<sha256 of its content>"), to tell new ones from old.
	SupportingDigests []string `bson:"supportingDigests,omitempty"`
	// ExtendedFrom is the decision deadline before a reviewer took the
	// 14-day extension (zero when none was taken); ExtensionReason says why.
	ExtendedFrom    time.Time `bson:"extendedFrom,omitempty"`
	ExtensionReason string    `bson:"extensionReason,omitempty"`
	// Appeals are the reconsiderations and appeals recorded on the request.
	Appeals []Appeal `bson:"appeals,omitempty"`
	// Attached are documents the payer's staff attached to the request
	// (information that arrived outside PAS: fax, portal, phone notes).
	Attached []Attached `bson:"attached,omitempty"`
}

// Attached is one document attached to a request by the payer's staff.
type Attached struct {
	Number   int       `bson:"number"`
	Received time.Time `bson:"received"`
	// Key is the document's key in the request-bundle store (a FHIR
	// DocumentReference as JSON).
	Key  string `bson:"key"`
	Note string `bson:"note,omitempty"`
	By   string `bson:"by"`
	// Principal is who authenticated it (desk:<username> or client:<id>).
	Principal string `bson:"principal,omitempty"`
	// New is true until the next decision.
	New bool `bson:"new,omitempty"`
	// Size is the document's size in bytes (0 on documents attached
	// before sizes were kept).
	Size int `bson:"size,omitempty"`
}

// Assignee is the reviewer a request is assigned to. Key identifies the
// reviewer across the desk and the review API: "npi:<NPI>" when the
// reviewer has an NPI, else "name:<name>".
type Assignee struct {
	Key  string    `bson:"key" json:"key"`
	NPI  string    `bson:"npi,omitempty" json:"npi,omitempty"`
	Name string    `bson:"name,omitempty" json:"name,omitempty"`
	Role string    `bson:"role,omitempty" json:"role,omitempty"`
	At   time.Time `bson:"at" json:"at"`
	// By is who assigned it ("self" for a claim, else the assigner's key).
	By string `bson:"by,omitempty" json:"by,omitempty"`
}

// Appeal is a reopening of decided items: a reconsideration the payer
// starts, or an appeal the provider or member filed, with what came with it.
type Appeal struct {
	Number int `bson:"number" json:"number"`
	// Kind is reconsideration or appeal.
	Kind     string    `bson:"kind" json:"kind"`
	Received time.Time `bson:"received" json:"received"`
	// Items are the item sequences reopened.
	Items []int `bson:"items" json:"items"`
	// Reason is the reviewer's account of why the items were reopened.
	Reason string `bson:"reason,omitempty" json:"reason,omitempty"`
	// From is who filed an appeal (provider, member, representative).
	From string `bson:"from,omitempty" json:"from,omitempty"`
	// Documents are the keys (RequestBundle store) of documents that came
	// with the appeal, each a FHIR DocumentReference as JSON.
	Documents []string `bson:"documents,omitempty" json:"-"`
	// By is the reviewer who reopened the items.
	By     string `bson:"by" json:"by"`
	ByRole string `bson:"byRole,omitempty" json:"byRole,omitempty"`
	// Principal is who authenticated it (desk:<username> or client:<id>).
	Principal string `bson:"principal,omitempty" json:"principal,omitempty"`
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
	// ReviewerRole is the reviewer's role (nurse or physician) when they
	// decided; adverse determinations need a physician.
	ReviewerRole string `json:"reviewerRole,omitempty" bson:"reviewerRole,omitempty"`
	// InternalNote is the reviewer's note for the payer's own staff: shown
	// on the desk and in the review API, never sent to the provider (Note is).
	InternalNote string `json:"internalNote,omitempty" bson:"internalNote,omitempty"`
	// Reopened, on a decision that was reopened for reconsideration, is
	// the previous final decision's action (approve, deny or modify).
	Reopened string `json:"reopened,omitempty" bson:"reopened,omitempty"`
	// Appeal, on a pend that reopened the item, is the number of the
	// Appeal on the chain; on the decision that follows, the same number.
	Appeal int `json:"appeal,omitempty" bson:"appeal,omitempty"`
	// Overturned, on a reviewer's decision after a reopening, is the
	// action it reversed (deny, approve, modify) when it differs from it.
	Overturned string `json:"overturned,omitempty" bson:"overturned,omitempty"`
	// Extended is set on a request for information that took the 14-day
	// extension of the decision deadline.
	Extended bool `json:"extended,omitempty" bson:"extended,omitempty"`
	// Principal, on human decisions, is who authenticated the decision:
	// "desk:<username>" (the reviewer's own desk account) or "client:<id>"
	// (a payer client deciding on behalf of the reviewer it names).
	Principal string `json:"principal,omitempty" bson:"principal,omitempty"`
	// After, on a pend decided by a delayed rule, is when the rule finishes it.
	After     time.Time `json:"after,omitzero" bson:"after,omitempty"`
	FinalRule string    `json:"finalRule,omitempty" bson:"finalRule,omitempty"`
	// RequestInfo lists LOINC attachment codes the payer asks the provider
	// to send while the item is pended (PAS "additional information").
	RequestInfo []string `json:"requestInfo,omitempty" bson:"requestInfo,omitempty"`
	// RulesVersion is the coverage rules version (label@hash) a rule
	// decision was made with.
	RulesVersion string `json:"rulesVersion,omitempty" bson:"rulesVersion,omitempty"`
	// Criteria are the rule's criteria with their findings and evidence.
	Criteria []Criterion `json:"criteria,omitempty" bson:"criteria,omitempty"`
	// GoldCard is the gold-carded provider NPI an approval rests on.
	GoldCard string `json:"goldCard,omitempty" bson:"goldCard,omitempty"`
}

// Criterion is one coverage criterion's finding for an item: met, not-met
// or unknown, with the FHIRPath locations of the data read.
type Criterion struct {
	ID          string   `json:"id" bson:"id"`
	Description string   `json:"description,omitempty" bson:"description,omitempty"`
	Finding     string   `json:"finding" bson:"finding"`
	Evidence    []string `json:"evidence,omitempty" bson:"evidence,omitempty"`
	Detail      string   `json:"detail,omitempty" bson:"detail,omitempty"`
	RequestInfo []string `json:"requestInfo,omitempty" bson:"requestInfo,omitempty"`
}

// PatientMatch is who a request is about, as $inquire compares patients:
// member ids with their systems ("system|value"), the Coverage's subscriber
// ids (shared by a family), and the patient's name (normalised
// "FAMILY|GIVEN") and birth date.
type PatientMatch struct {
	MemberIDs     []string `bson:"memberIds,omitempty"`
	SubscriberIDs []string `bson:"subscriberIds,omitempty"`
	Name          string   `bson:"name,omitempty"`
	BirthDate     string   `bson:"birthDate,omitempty"`
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
	// Refs are the references in Resource (read at intake), so responses
	// need not decode it again; RefsKnown says they were read (entries
	// stored before they were have neither).
	Refs      []string `bson:"refs,omitempty"`
	RefsKnown bool     `bson:"refsKnown,omitempty"`
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
	Body          string    `bson:"body,omitempty"`
}
