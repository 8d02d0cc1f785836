package pas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/priora/priora/coverage"
	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

// ReviewDecision is a person's decision on a pended request, as posted to
// the review API.
type ReviewDecision struct {
	// Reviewer is the person deciding. Through the review API it names the
	// reviewer on whose behalf the payer client decides; at the desk it is
	// the signed-in account.
	Reviewer Reviewer       `json:"reviewer"`
	Items    []ItemDecision `json:"items"`
}

// Principal is who authenticated a decision, as the server or the desk
// established it — never taken from the decision body: a desk account, or a
// payer client deciding on behalf of the reviewer it names.
type Principal struct {
	// Desk is the username of the desk account.
	Desk string
	// Client is the payer client's id.
	Client string
}

// String is how the principal is recorded: "desk:<username>" or
// "client:<id>".
func (p Principal) String() string {
	if p.Desk != "" {
		return "desk:" + p.Desk
	}
	return "client:" + p.Client
}

// DecidedBy describes a decision's author for the audit trail: the
// reviewer and the principal that vouched for them.
func DecidedBy(p Principal, r Reviewer) string {
	who := r.Name
	if r.NPI != "" {
		who = strings.TrimSpace(who + " (NPI " + r.NPI + ")")
	}
	if p.Desk != "" {
		return "reviewer " + who + " at the desk as " + p.Desk
	}
	return "reviewer " + who + " on behalf of via client " + p.Client
}

// Reviewer identifies the person deciding.
type Reviewer struct {
	NPI  string `json:"npi"`
	Name string `json:"name"`
	// Role is nurse or physician (see RoleOf: none counts as nurse). At
	// the desk it is the account's; through the review API the payer
	// client vouches for it as for the rest of the reviewer.
	Role string `json:"role,omitempty"`
}

// ItemDecision decides one pended item.
type ItemDecision struct {
	Sequence int `json:"sequence"`
	// Action is approve, deny, modify or request-info.
	Action     string `json:"action"`
	ReasonCode string `json:"reasonCode,omitempty"`
	Note       string `json:"note,omitempty"`
	// Quantity is what a modify authorizes; From/To the authorized dates.
	Quantity float64 `json:"quantity,omitempty"`
	From     string  `json:"from,omitempty"`
	To       string  `json:"to,omitempty"`
	// Codes are the LOINC attachment codes a request-info asks for.
	Codes []string `json:"codes,omitempty"`
	// InternalNote is for the payer's own staff: stored and shown on the
	// desk and in the review API, never sent to the provider (Note is).
	InternalNote string `json:"internalNote,omitempty"`
	// Extension, on a request-info, takes the one 14-day extension of the
	// decision deadline and says why (ExtensionReasons): 42 CFR
	// 422.568(b)(1)(i) and 422.572(b). The payer must tell the enrollee
	// in writing; Priora does not.
	Extension string `json:"extension,omitempty"`
}

// check validates a decision against the chain before anything changes.
func (d *ReviewDecision) check(a *store.Authorization) error {
	var is issues
	if strings.TrimSpace(d.Reviewer.NPI) == "" && strings.TrimSpace(d.Reviewer.Name) == "" {
		is.add("required", "reviewer", "the reviewer's npi or name is required")
	}
	if d.Reviewer.NPI != "" && !fhir.IsNPI(d.Reviewer.NPI) {
		is.add("value", "reviewer.npi", "%q is not a 10-digit NPI", d.Reviewer.NPI)
	}
	if len(d.Items) == 0 {
		is.add("required", "items", "decide at least one item")
	}
	role := RoleOf(d.Reviewer.Role)
	seen := map[int]bool{}
	for i, it := range d.Items {
		at := fmt.Sprintf("items[%d]", i)
		if seen[it.Sequence] {
			is.add("duplicate", at+".sequence", "item %d is decided twice", it.Sequence)
		}
		seen[it.Sequence] = true
		var cur *store.Item
		for k := range a.Items {
			if a.Items[k].Sequence == it.Sequence {
				cur = &a.Items[k]
			}
		}
		switch {
		case cur == nil:
			is.add("not-found", at+".sequence", "the request has no item %d", it.Sequence)
			continue
		case cur.Decision.Action != "pend":
			is.add("conflict", at+".sequence", "item %d is not pended (it is %s)", it.Sequence, cur.Decision.Action)
			continue
		}
		checkRole(&is, at, role, it, cur)
		if cur.Decision.Reopened != "" && role == RoleNurse {
			is.add("forbidden", at+".action", "item %d is reopened (reconsideration or appeal); deciding it again needs a physician reviewer (this reviewer is a nurse)", it.Sequence)
		}
		if it.Extension != "" {
			switch {
			case it.Action != "request-info":
				is.add("value", at+".extension", "the deadline is extended only with a request for information")
			case extensionReasons[it.Extension] == "":
				is.add("value", at+".extension", "extension must be enrollee-request, noncontract-evidence or exigent (42 CFR 422.568(b)(1)(i))")
			case !a.ExtendedFrom.IsZero():
				is.add("conflict", at+".extension", "the decision deadline was extended already (from %s); it may be extended once", a.ExtendedFrom.UTC().Format(time.RFC3339))
			}
		}
		if code := strings.TrimSpace(it.ReasonCode); code != "" && !coverage.KnownReasonCode(code) {
			is.add("code-invalid", at+".reasonCode", "reason code %q is not in the shipped X12 review decision reason list; valid: %s",
				code, knownReasonCodes())
		}
		switch it.Action {
		case "approve":
		case "deny":
			if strings.TrimSpace(it.ReasonCode) == "" {
				is.add("required", at+".reasonCode", "a denial needs a reasonCode")
			}
			if strings.TrimSpace(it.Note) == "" {
				is.add("required", at+".note", "a denial needs a note to the provider saying why")
			}
		case "modify":
			if it.Quantity <= 0 && it.From == "" {
				is.add("required", at+".quantity", "a modification needs the authorized quantity or dates")
			}
			if (it.From == "") != (it.To == "") {
				is.add("required", at+".to", "authorized dates need both from and to")
			}
			for _, d := range []string{it.From, it.To} {
				if d != "" {
					if _, err := time.Parse("2006-01-02", d); err != nil {
						is.add("value", at, "%q is not a date (YYYY-MM-DD)", d)
					}
				}
			}
			checkNotMore(&is, at, it, cur)
		case "request-info":
			if len(it.Codes) == 0 {
				is.add("required", at+".codes", "a request for information needs LOINC attachment codes")
			}
		default:
			is.add("value", at+".action", "action %q must be approve, deny, modify or request-info", it.Action)
		}
	}
	return issuesError(is)
}

// Decide applies a reviewer's decision to a pended request: a new response
// version, and an event that notifies subscribed EHRs, written together.
// by is the authenticated principal, recorded on every decided item with
// the reviewer; a decision without one is refused. tenant "" allows any
// tenant (the payer side).
func (s *Service) Decide(ctx context.Context, by Principal, tenant, id string, d ReviewDecision) (*Answer, error) {
	if (by.Desk == "") == (by.Client == "") {
		return nil, fhir.Errorf(fhir.Forbidden, "a decision needs an authenticated payer principal: a desk account or a payer client")
	}
	return s.change(ctx, tenant, id, func(a *store.Authorization, now time.Time) error {
		if err := d.check(a); err != nil {
			return err
		}
		who := d.Reviewer.label()
		human := store.Decision{By: "reviewer:" + who, At: now, ReviewerNPI: d.Reviewer.NPI, ReviewerName: d.Reviewer.Name,
			Principal: by.String(), ReviewerRole: RoleOf(d.Reviewer.Role)}
		// The decision has seen the information that was new.
		a.NewInfo = nil
		for i := range a.Attached {
			a.Attached[i].New = false
		}
		for _, it := range d.Items {
			for k := range a.Items {
				item := &a.Items[k]
				if item.Sequence != it.Sequence {
					continue
				}
				nd := human
				nd.ReviewNumber = item.Decision.ReviewNumber
				nd.Note = it.Note
				nd.InternalNote = it.InternalNote
				if it.ReasonCode != "" {
					nd.ReasonCodes = []string{it.ReasonCode}
				}
				switch it.Action {
				case "approve":
					nd.Action, nd.Reason = "approve", "approved by reviewer"
				case "deny":
					nd.Action, nd.Reason = "deny", "denied by reviewer"
				case "modify":
					nd.Action, nd.Reason = "modify", "modified by reviewer"
					nd.AuthorizedQuantity, nd.AuthorizedFrom, nd.AuthorizedTo = it.Quantity, it.From, it.To
				case "request-info":
					nd.Action, nd.Reason = "pend", "reviewer requested more information"
					nd.RequestInfo = it.Codes
				}
				nd.ReviewAction = reviewActionOf(nd.Action)
				if prev := item.Decision; prev.Reopened != "" {
					nd.Appeal = prev.Appeal
					if nd.Action != "pend" && nd.Action != prev.Reopened {
						nd.Overturned = prev.Reopened
					}
					if nd.Action == "pend" {
						nd.Reopened = prev.Reopened
					}
				}
				if it.Extension != "" && a.ExtendedFrom.IsZero() {
					a.ExtendedFrom, a.ExtensionReason = a.DueAt, it.Extension
					a.DueAt = a.DueAt.AddDate(0, 0, extensionDays)
					nd.Extended = true
				}
				setDecision(item, nd)
			}
		}
		return nil
	})
}

func reviewActionOf(action string) string {
	switch action {
	case "approve":
		return "A1"
	case "deny":
		return "A3"
	case "pend":
		return "A4"
	case "modify":
		return "A6"
	case "cancel":
		return "C"
	}
	return ""
}

// label names a reviewer in a record: the NPI, else the name.
func (r Reviewer) label() string {
	if r.NPI != "" {
		return r.NPI
	}
	return r.Name
}

// errNoChange tells change that apply found nothing to do.
var errNoChange = errors.New("pas: nothing to change")

// change runs one state change on a chain that the provider hears of:
// the written version carries the next response version and the event
// announcing it (publish).
func (s *Service) change(ctx context.Context, tenant, id string, apply func(*store.Authorization, time.Time) error) (*Answer, error) {
	var answer *Answer
	_, _, err := s.retryOnConflict(ctx, tenant, id, apply, func(a *store.Authorization, now time.Time) error {
		var err error
		answer, err = s.publish(ctx, a, now)
		return err
	})
	return answer, err
}

// retryOnConflict loads a chain, applies a change and writes it with
// write, whose version guard answers store.ErrConflict when another
// writer stored that version first; then the whole load-apply-write is
// redone. An apply that answers errNoChange ends it without a write.
func (s *Service) retryOnConflict(ctx context.Context, tenant, id string, apply, write func(*store.Authorization, time.Time) error) (*store.Authorization, time.Time, error) {
	for attempt := 0; attempt < 8; attempt++ {
		a, err := s.cfg.Store.Authorization(ctx, tenant, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, time.Time{}, fhir.Errorf(fhir.NotFound, "no prior authorization request %s", id)
		}
		if err != nil {
			return nil, time.Time{}, err
		}
		now := s.cfg.Now().UTC().Truncate(time.Millisecond)
		err = apply(a, now)
		if errors.Is(err, errNoChange) {
			return a, now, nil
		}
		if err == nil {
			err = write(a, now)
		}
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return a, now, err
	}
	return nil, time.Time{}, &fhir.Error{Kind: fhir.Unavailable, Message: "the request is being changed concurrently; retry"}
}

// publish builds the next response version of a changed chain, records
// the event announcing it, and writes the chain.
func (s *Service) publish(ctx context.Context, a *store.Authorization, now time.Time) (*Answer, error) {
	settle(a)
	a.Updated = now
	in, err := latestInput(a)
	if err != nil {
		return nil, err
	}
	in.now, in.number = now, len(a.Responses)+1
	in.authDays = s.cfg.Rules().Defaults.AuthorizationDays
	body, outcome, err := buildResponse(in)
	if err != nil {
		return nil, err
	}
	a.Responses = append(a.Responses, store.Response{Number: in.number, Created: now, Outcome: outcome, JSON: string(body)})
	a.AddEvent(in.number, now)
	finishUMEvents(a, now, in.number)
	if err := s.cfg.Store.UpdateAuthorization(ctx, a); err != nil {
		return nil, err
	}
	s.countDecided(a, now)
	return &Answer{Body: body, Authorization: a.ID, Outcome: outcome}, nil
}

// latestInput is what a later response version is built from: the chain's
// latest Claim and the identifier of the Bundle that carried it.
func latestInput(a *store.Authorization) (responseInput, error) {
	var c fhir.Claim
	if err := json.Unmarshal([]byte(a.LatestClaim), &c); err != nil {
		return responseInput{}, fmt.Errorf("pas: stored claim of %s: %w", a.ID, err)
	}
	in := responseInput{auth: a, claim: &c, claimFullURL: a.LatestClaimFullURL}
	if a.LatestBundleID != "" {
		var id fhir.Identifier
		if err := json.Unmarshal([]byte(a.LatestBundleID), &id); err == nil {
			in.bundleID = &id
		}
	}
	return in, nil
}

// knownReasonCodes lists the shipped X12 reason codes for an error message.
func knownReasonCodes() string {
	var out []string
	for _, rc := range coverage.ReasonCodes() {
		out = append(out, rc.Code+" ("+rc.Description+")")
	}
	return strings.Join(out, ", ")
}
