package pas

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

const (
	// maxInquiryResults bounds one inquiry's answer.
	maxInquiryResults = 50
)

// Inquire handles Claim/$inquire: a PAS Inquiry Request Bundle in, a
// Parameters with one `return` PAS Inquiry Response Bundle per matching
// prior authorization out (PAS 2.2.1, FHIR-55394). No match is an empty
// Parameters, not an error.
//
// Matching follows PAS spec-52/53: any system may ask, but only about the
// request's own patient — a member id with its system, or a subscriber id
// (which a whole family shares) together with the patient's name and birth
// date — and with the ordering or rendering provider's NPI. The
// inquiry's own Claim.identifier is its trace number, not a search key.
// Authorization numbers (REF-BB/REF-NT), service codes and dates narrow the
// result; a chain is always answered with its current response (spec-47/48).
func (s *Service) Inquire(ctx context.Context, who Caller, body []byte) (*Answer, error) {
	chk, err := checkRequest(ctx, s.cfg.Parser, s.cfg.Validate, body, ProfileInquiryRequestBundle)
	if err != nil {
		return nil, err
	}
	q := chk.inq
	chains, err := s.cfg.Store.AuthorizationsByMember(ctx, q.memberIDs, 500)
	if err != nil {
		return nil, err
	}
	type part struct {
		Name     string          `json:"name"`
		Resource json.RawMessage `json:"resource"`
	}
	out := struct {
		ResourceType string `json:"resourceType"`
		Parameter    []part `json:"parameter,omitempty"`
	}{ResourceType: "Parameters"}
	parties := 0 // chains of this patient and provider
	for _, a := range chains {
		if len(out.Parameter) == maxInquiryResults {
			break
		}
		if q.sameParties(a) {
			parties++
		}
		if !q.matches(a) {
			continue
		}
		b, err := inquiryResponse(a)
		if err != nil {
			return nil, err
		}
		out.Parameter = append(out.Parameter, part{Name: "return", Resource: b})
	}
	if len(out.Parameter) == 0 && q.authNumber != "" && parties > 0 {
		b, err := s.authorizationNotFound(q)
		if err != nil {
			return nil, err
		}
		out.Parameter = append(out.Parameter, part{Name: "return", Resource: b})
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("pas: marshal inquiry answer: %w", err)
	}
	return &Answer{Body: b, Outcome: fmt.Sprintf("%d match(es)", len(out.Parameter))}, nil
}

// inquiry is what an inquiry asks for.
type inquiry struct {
	req     *request // the inquiry as read
	patient store.PatientMatch
	// memberIDs are the identifier values that find candidate chains.
	memberIDs    []string
	providerNPIs []string
	insurerIDs   []string
	// authNumbers are REF-BB / REF-NT values to target; authNumber is the
	// first, at authPath (FHIRPath) and authElement (its X12 element).
	authNumbers                       []string
	authNumber, authPath, authElement string
	// services are code filters; empty means any service.
	services []codeRange
	// status filters on the current review action of an item.
	statuses []string
	from, to string
}

type codeRange struct{ system, from, to string }

func parseInquiry(src source) (*inquiry, error) {
	raw := src.raw
	b, is, err := checkBundleEnvelope(src, "PAS inquiry")
	if err != nil {
		return nil, err
	}
	if len(b.Entry) == 0 {
		return nil, is.err("the PAS inquiry Bundle is not processable")
	}
	if b.Entry[0].Type != "Claim" {
		is.add("structure", "Bundle.entry[0].resource", "the first entry must be a PAS Claim Inquiry, not %s", orNone(b.Entry[0].Type))
		return nil, is.err("the PAS inquiry Bundle is not processable")
	}
	var c fhir.Claim
	if err := src.decode(b.Entry[0].Resource, &c); err != nil {
		is.add("structure", "Bundle.entry[0].resource", "the Claim is malformed")
		return nil, is.err("the PAS inquiry Bundle is not processable")
	}
	at := "Bundle.entry[0].resource"
	checkModifiers(&is, at, c.ModifierExtension)
	r := &request{raw: raw, src: src, bundle: b, claim: &c, patientEntry: -1, insurerEntry: -1, providerEntry: -1, coverageEntry: -1}
	r.checkReferences(&is)
	if err := is.err("the PAS inquiry Bundle is not processable"); err != nil {
		return nil, err
	}
	r.resolveParties()
	q := &inquiry{patient: r.patientMatch(), memberIDs: appendUnique(nil, r.memberIDs()...), providerNPIs: appendUnique(nil, r.providerNPIs()...)}
	if p := r.party(r.insurerEntry); p != nil {
		for _, id := range p.Identifier {
			q.insurerIDs = append(q.insurerIDs, id.Key())
		}
	}
	if len(q.patient.MemberIDs) == 0 && len(q.patient.SubscriberIDs) == 0 {
		is.add("required", at+".patient", "an inquiry must identify the patient by a member id with its system, or by the subscriber id with the patient's name and birth date (PAS spec-53)")
	}
	if len(q.providerNPIs) == 0 {
		is.add("required", at+".provider", "an inquiry must identify the ordering or rendering provider by NPI (PAS spec-53)")
	}
	if err := is.err("the PAS inquiry cannot be matched"); err != nil {
		return nil, err
	}
	target := func(exts []fhir.Extension, at, element string) {
		for _, url := range []string{extAuthorizationNumber, extAdminReferenceNumber} {
			for i, e := range exts {
				if e.URL != url {
					continue
				}
				n := e.StringValue()
				q.authNumbers = append(q.authNumbers, n)
				if q.authNumber == "" && n != "" {
					q.authNumber, q.authPath, q.authElement = n, fmt.Sprintf("%s.extension[%d]", at, i), element
				}
				break
			}
		}
	}
	// X12 278: REF*BB / REF*NT at the patient event (2000E) and the
	// service level (2000F).
	target(c.Extension, at, "2000E-REF02")
	for k, it := range c.Item {
		target(it.Extension, fmt.Sprintf("%s.item[%d]", at, k), "2000F-REF02")
		if e, ok := fhir.FindExtension(it.Extension, extReviewActionCode); ok && e.ValueCodeableConcept != nil {
			if cd, ok := e.ValueCodeableConcept.Code(sysX12ReviewAction); ok {
				q.statuses = append(q.statuses, cd.Code)
			}
		}
		if it.ProductOrService != nil {
			end, _ := fhir.FindExtension(it.Extension, extProductOrServiceCodeEnd)
			for _, cd := range it.ProductOrService.Coding {
				if cd.Code == "not-applicable" {
					continue // spec-43: no service filter
				}
				rg := codeRange{system: cd.System, from: cd.Code, to: cd.Code}
				if end.ValueCodeableConcept != nil {
					if e, ok := end.ValueCodeableConcept.Code(cd.System); ok {
						rg.to = e.Code
					}
				}
				q.services = append(q.services, rg)
			}
		}
		if p := requestedPeriod(it); p != nil {
			q.from, q.to = minDate(q.from, p.Start), maxDate(q.to, p.End)
		}
	}
	q.req = r
	return q, nil
}

// sameParties reports whether a chain is of the inquiry's patient,
// provider and insurer: the chains the inquirer may see (spec-53).
func (q *inquiry) sameParties(a *store.Authorization) bool {
	if !samePatient(q.patient, a.Patient) || !overlap(a.ProviderNPIs, q.providerNPIs) {
		return false
	}
	return len(q.insurerIDs) == 0 || len(a.InsurerIDs) == 0 || overlap(a.InsurerIDs, q.insurerIDs)
}

// matches applies the inquiry to one chain.
func (q *inquiry) matches(a *store.Authorization) bool {
	if !q.sameParties(a) {
		return false
	}
	if len(q.authNumbers) > 0 {
		// A specific authorization number identifies the request; the
		// current response of its chain is the answer (spec-47/48), whatever
		// the service lines of the inquiry say.
		for _, n := range q.authNumbers {
			if n == a.ID || strings.HasPrefix(n, a.ID+"-") || contains(a.RefNumbers, n) {
				return true
			}
		}
		return false
	}
	if len(q.services) == 0 && len(q.statuses) == 0 && q.from == "" {
		return true
	}
	for _, it := range a.Items {
		if q.itemMatches(it) {
			return true
		}
	}
	return false
}

func (q *inquiry) itemMatches(it store.Item) bool {
	if len(q.services) > 0 {
		ok := false
		for _, rg := range q.services {
			if sameSystem(rg.system, it.System) && it.Code >= rg.from && it.Code <= rg.to {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	if len(q.statuses) > 0 {
		ok := false
		for _, st := range q.statuses {
			if st == it.Decision.ReviewAction {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	if q.from != "" && it.ServiceFrom != "" {
		if it.ServiceTo != "" && it.ServiceTo[:min(10, len(it.ServiceTo))] < q.from[:min(10, len(q.from))] {
			return false
		}
		if q.to != "" && it.ServiceFrom[:min(10, len(it.ServiceFrom))] > q.to[:min(10, len(q.to))] {
			return false
		}
	}
	return true
}

func sameSystem(a, b string) bool {
	return a == b || strings.TrimPrefix(a, "https://") == strings.TrimPrefix(b, "http://") ||
		strings.TrimPrefix(a, "http://") == strings.TrimPrefix(b, "https://")
}

func overlap(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

func minDate(a, b string) string {
	if a == "" || (b != "" && b < a) {
		return b
	}
	return a
}

func maxDate(a, b string) string {
	if b > a {
		return b
	}
	return a
}

// inquiryResponse turns the chain's current PAS Response Bundle into a PAS
// Inquiry Response Bundle: the same content under the inquiry profiles.
func inquiryResponse(a *store.Authorization) (json.RawMessage, error) {
	cur := a.CurrentResponse()
	if cur == nil {
		return nil, fmt.Errorf("pas: authorization %s has no response", a.ID)
	}
	out, err := asInquiryResponse([]byte(cur.JSON))
	if err != nil {
		return nil, fmt.Errorf("pas: stored response of %s: %w", a.ID, err)
	}
	return out, nil
}

// authorizationNotFound answers an inquiry that names an authorization
// number (REF-BB / REF-NT) none of the requests on file for this patient
// and provider carries: one Inquiry Response Bundle whose ClaimResponse is in error
// with X12 reject reason AA (authorization number not found), the
// errorPath and X12 element of the number, and follow-up C. Its request
// has no Claim to point at, so it carries a data-absent-reason (unknown:
// the Claim is expected to exist but is not known here), the slice PAS
// gives ClaimResponse.request for this (spec-44). An authorization of
// another patient or provider is not found either, and an inquiry about a
// patient and provider with nothing on file gets no match at all, as
// before: the answer discloses nothing the inquirer could not already ask
// for with the member id and NPI (spec-52/53).
func (s *Service) authorizationNotFound(q *inquiry) (json.RawMessage, error) {
	r := q.req
	now := s.cfg.Now().UTC()
	a := &store.Authorization{ID: "PA-not-found", Created: now, Echo: r.echoEntries()}
	body, _, err := buildResponse(responseInput{
		auth: a, claim: r.claim, claimFullURL: r.claimFullURL(), bundleID: r.bundle.Identifier, now: now, number: 1,
		requestAbsent: "unknown", noAuthorization: true, authDays: s.cfg.Rules().Defaults.AuthorizationDays,
		businessErrors: []businessError{{
			Code: rejectAuthorizationNotFound, Followup: followupCorrect, Path: q.authPath, Element: q.authElement,
			Note: "No prior authorization " + q.authNumber + " was found for this patient and provider. Check the number and inquire again.",
		}},
	})
	if err != nil {
		return nil, err
	}
	return asInquiryResponse(body)
}

// asInquiryResponse puts a PAS Response Bundle under the inquiry profiles.
func asInquiryResponse(response []byte) (json.RawMessage, error) {
	var b map[string]any
	if err := json.Unmarshal(response, &b); err != nil {
		return nil, err
	}
	b["meta"] = map[string]any{"profile": []string{ProfileInquiryResponseBundle}}
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		res, _ := e.(map[string]any)["resource"].(map[string]any)
		if res["resourceType"] == "ClaimResponse" {
			res["meta"] = map[string]any{"profile": []string{ProfileClaimInquiryResponse}}
		}
	}
	return json.Marshal(b)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
