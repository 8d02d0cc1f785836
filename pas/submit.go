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

// Submit handles Claim/$submit: a PAS request Bundle (or a Parameters with
// a resource part) in, a PAS Response Bundle out. Errors are *fhir.Error
// with kind Invalid for requests that cannot be processed.
func (s *Service) Submit(ctx context.Context, who Caller, body []byte) (*Answer, error) {
	chk, err := checkRequest(ctx, s.cfg.Parser, s.cfg.Validate, body, ProfileRequestBundle)
	if err != nil {
		return nil, err
	}
	raw, req := chk.raw, chk.req
	key := submissionKey(who.Tenant, req.bundle.Identifier.Key(), raw)
	if a, err := s.cfg.Store.AuthorizationBySubmission(ctx, who.Tenant, key); err == nil {
		return replay(a, key)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	var elig *eligibility
	if !req.claimCancelled() {
		if elig, err = s.checkEligibility(ctx, req, s.cfg.Rules()); err != nil {
			return nil, err
		}
		if elig != nil && len(elig.errors) > 0 {
			return s.reject(req, elig.errors...)
		}
	}
	if req.isUpdate() {
		return s.update(ctx, who, req, key, elig)
	}
	return s.create(ctx, who, req, key, elig)
}

func replay(a *store.Authorization, key string) (*Answer, error) {
	sub, ok := a.SubmissionByKey(key)
	if !ok {
		return nil, fmt.Errorf("pas: authorization %s lost submission %s", a.ID, key)
	}
	r, ok := a.ResponseByNumber(sub.Response)
	if !ok {
		return nil, fmt.Errorf("pas: authorization %s lost response %d", a.ID, sub.Response)
	}
	return &Answer{Body: []byte(r.JSON), Replayed: true, Authorization: a.ID, Outcome: r.Outcome}, nil
}

// create decides a new request and stores it as a new chain.
func (s *Service) create(ctx context.Context, who Caller, req *request, key string, elig *eligibility) (*Answer, error) {
	now := s.cfg.Now().UTC().Truncate(time.Millisecond)
	rules := s.cfg.Rules()
	a := &store.Authorization{
		ID:        authorizationID(key),
		Tenant:    who.Tenant,
		Submitter: who.Client,
		Created:   now,
		Updated:   now,
	}
	s.index(a, req)
	a.Eligibility = elig.record()
	a.Submissions = []store.Submission{newSubmission(req, key, now, 1)}
	a.SubmissionKeys = []string{key}
	svc := req.serviceContext()
	s.prepareCriteria(ctx, req, rules, a.ID)
	for i := range req.claim.Item {
		it := req.claim.Item[i]
		item := itemRecord(it, req.rawItems[i])
		item.Decision = decide(rules, elig.service(svc, i), req, it, a.ID, now)
		if req.claimCancelled() || item.Cancelled {
			item.Decision = cancelled(now, a.ID, it.Sequence)
		}
		a.Items = append(a.Items, item)
	}
	if err := s.applyAssertions(ctx, req, a, now); err != nil {
		return nil, err
	}
	settle(a)
	a.Expedited = req.expedited()
	// Test data (HTEST on the request Bundle, or a test client) is answered
	// like any other request but kept out of the default work queue and
	// the figures reported under CMS-0057-F.
	a.Test = who.Test || req.bundle.Meta.IsTestData()
	a.DueAt = dueAt(a.Created, a.Expedited)
	body, outcome, err := buildResponse(responseInput{
		auth: a, claim: req.claim, claimItems: req.rawItems, claimFullURL: req.claimFullURL(),
		bundleID: req.bundle.Identifier, now: now, number: 1, authDays: rules.Defaults.AuthorizationDays,
	})
	if err != nil {
		return nil, err
	}
	a.Responses = []store.Response{{Number: 1, Created: now, Outcome: outcome, JSON: string(body)}}
	finishUMEvents(a, now, 1)

	if err := s.cfg.Store.SaveRequestBundle(ctx, &store.RequestBundle{
		Key: key, Tenant: who.Tenant, Authorization: a.ID, Received: now, Body: string(req.raw),
	}); err != nil {
		return nil, err
	}
	switch err := s.cfg.Store.CreateAuthorization(ctx, a); {
	case errors.Is(err, store.ErrDuplicate):
		// The same submission raced us and won: answer what it stored.
		stored, err := s.cfg.Store.Authorization(ctx, who.Tenant, a.ID)
		if err != nil {
			return nil, err
		}
		return replay(stored, key)
	case err != nil:
		return nil, err
	}
	s.countDecided(a, now)
	return &Answer{Body: body, Authorization: a.ID, Outcome: outcome, Rules: rulesDecided(a, now)}, nil
}

func newSubmission(req *request, key string, now time.Time, response int) store.Submission {
	sub := store.Submission{
		Key:              key,
		BundleIdentifier: req.bundle.Identifier.Key(),
		Received:         now,
		ClaimFullURL:     req.claimFullURL(),
		Update:           req.isUpdate(),
		Cancel:           req.claimCancelled(),
		Response:         response,
	}
	for _, id := range req.claim.Identifier {
		sub.ClaimIdentifiers = append(sub.ClaimIdentifiers, id.Key())
	}
	return sub
}

// index records the keys that find this chain again (claim identifiers and
// fullUrls; patient, provider and insurer identifiers for $inquire; sender
// identifiers for subscriptions) and the resources responses echo.
func (s *Service) index(a *store.Authorization, req *request) {
	addKey := func(k string) {
		for _, have := range a.ClaimKeys {
			if have == k {
				return
			}
		}
		a.ClaimKeys = append(a.ClaimKeys, k)
	}
	addKey("url|" + req.claimFullURL())
	if req.priorFullURL != "" {
		addKey("url|" + req.priorFullURL)
	}
	for _, id := range req.claim.Identifier {
		addKey("claim|" + id.Key())
	}
	a.Patient = mergePatient(a.Patient, req.patientMatch())
	a.MemberIDs = appendUnique(a.MemberIDs, req.memberIDs()...)
	a.ProviderNPIs = appendUnique(a.ProviderNPIs, req.providerNPIs()...)
	a.InsurerIDs = appendUnique(a.InsurerIDs, req.insurerIDs()...)
	a.SenderIDs = appendUnique(a.SenderIDs, req.senderIDs()...)
	a.RefNumbers = appendUnique(a.RefNumbers, a.ID)
	a.RefNumbers = appendUnique(a.RefNumbers, req.refNumbers()...)
	a.Echo = req.echoEntries()
	a.Summary = req.summary()
	a.SupportingDigests = req.supportingDigests()
	a.LatestClaim = string(req.bundle.Entry[req.claimEntry].Resource)
	a.LatestClaimFullURL = req.claimFullURL()
	if b, err := json.Marshal(req.bundle.Identifier); err == nil {
		a.LatestBundleID = string(b)
	}
}

func appendUnique(list []string, add ...string) []string {
	for _, v := range add {
		if v == "" {
			continue
		}
		dup := false
		for _, have := range list {
			if have == v {
				dup = true
				break
			}
		}
		if !dup {
			list = append(list, v)
		}
	}
	return list
}

// decide applies the coverage rules to one item.
func decide(rules *coverage.Rules, svc coverage.Service, req *request, it fhir.ClaimItem, authID string, now time.Time) store.Decision {
	return decisionOf(rules.Decide(itemService(svc, req, it, now)), it, authID, now)
}

// itemService is the coverage view of one item: the request's context
// (svc) with the item's codes, quantity, place, diagnoses and criteria data.
func itemService(svc coverage.Service, req *request, it fhir.ClaimItem, now time.Time) coverage.Service {
	svc.Codes = nil
	if it.ProductOrService != nil {
		for _, c := range it.ProductOrService.Coding {
			svc.Codes = append(svc.Codes, coverage.Code{System: c.System, Code: c.Code, Display: c.Display})
		}
	}
	svc.Quantity = it.Quantity.Float()
	if svc.Quantity == 0 {
		svc.Quantity = 1
	}
	if it.LocationCodeableConcept != nil {
		if c, ok := it.LocationCodeableConcept.Code(sysPOS); ok {
			svc.PlaceOfService = c.Code
		}
	}
	if len(it.DiagnosisSequence) > 0 {
		svc.Diagnoses = req.diagnoses(it.DiagnosisSequence)
	}
	svc.Today = now.Format(time.DateOnly)
	svc.Request = nil
	if req.criteria != nil {
		svc.Request = req.criteria.Item(it.Sequence, nil, req.history)
	}
	return svc
}

// decisionOf records a rules outcome as an item's decision.
func decisionOf(out coverage.Outcome, it fhir.ClaimItem, authID string, now time.Time) store.Decision {
	d := store.Decision{
		Action:       string(out.Decision.Action),
		ReviewAction: out.Decision.Action.ReviewAction(),
		Note:         out.Decision.Note,
		RuleID:       out.RuleID(),
		Reason:       out.Reason,
		By:           "rule:" + out.RuleID(),
		At:           now,
		ReviewNumber: fmt.Sprintf("%s-%d", authID, it.Sequence),
		RulesVersion: out.Version,
		GoldCard:     out.GoldCard,
	}
	if len(out.Criteria) > 0 {
		d.Criteria = criteriaRecord(out.Criteria)
		d.Note = strings.TrimSpace(d.Note + "\n" + coverage.Explain(out.Criteria))
	}
	if out.Decision.ReasonCode != "" {
		d.ReasonCodes = []string{out.Decision.ReasonCode}
	}
	if out.Decision.Action == coverage.Modify {
		d.AuthorizedQuantity = out.Decision.AuthorizeQuantity
	}
	if out.Decision.Action == coverage.Pend {
		if out.Decision.Then != "" {
			d.After = now.Add(out.Decision.After.Duration)
			d.FinalRule = string(out.Decision.Then)
		}
		d.RequestInfo = out.Decision.RequestInfo
	}
	return d
}

func cancelled(now time.Time, authID string, seq int) store.Decision {
	return store.Decision{Action: "cancel", ReviewAction: "C", By: "client", At: now,
		Reason: "withdrawn by the submitter", ReviewNumber: fmt.Sprintf("%s-%d", authID, seq)}
}

// settle recomputes what follows from the items' decisions: the chain's
// status and when a delayed rule next finishes an item.
func settle(a *store.Authorization) {
	a.Status = chainStatus(a)
	a.NextAuto = time.Time{}
	for _, it := range a.Items {
		d := it.Decision
		if d.Action == "pend" && d.FinalRule != "" && (a.NextAuto.IsZero() || d.After.Before(a.NextAuto)) {
			a.NextAuto = d.After
		}
	}
	a.State = reviewState(a)
}

// chainStatus is pended while any live item awaits a decision.
func chainStatus(a *store.Authorization) string {
	live := 0
	for _, it := range a.Items {
		switch it.Decision.Action {
		case "pend":
			return "pended"
		case "cancel":
		default:
			live++
		}
	}
	if live == 0 {
		return "cancelled"
	}
	return "complete"
}

// dueAt is the CMS-0057-F decision deadline: 72 hours for expedited
// requests, 7 calendar days for standard ones.
func dueAt(received time.Time, expedited bool) time.Time {
	if expedited {
		return received.Add(72 * time.Hour)
	}
	return received.AddDate(0, 0, 7)
}

func itemRecord(it fhir.ClaimItem, raw json.RawMessage) store.Item {
	rec := store.Item{Sequence: it.Sequence, Quantity: it.Quantity.Float()}
	if it.Quantity != nil {
		rec.Unit = it.Quantity.Unit
	}
	if it.ProductOrService != nil && len(it.ProductOrService.Coding) > 0 {
		c := it.ProductOrService.Coding[0]
		rec.System, rec.Code, rec.Display = c.System, c.Code, c.Display
	}
	switch {
	case it.ServicedPeriod != nil:
		rec.ServiceFrom, rec.ServiceTo = it.ServicedPeriod.Start, it.ServicedPeriod.End
	case it.ServicedDate != nil:
		rec.ServiceFrom, rec.ServiceTo = *it.ServicedDate, *it.ServicedDate
	}
	rec.Cancelled = itemCancelled(it)
	rec.ItemJSON = string(raw)
	return rec
}

// itemCancelled: the infoCancelled modifier extension, or certification
// type 3 (Cancel) on the item (PAS spec-69/70).
func itemCancelled(it fhir.ClaimItem) bool {
	for _, m := range it.ModifierExtension {
		if modifierExtensions[m.URL] && m.ValueBoolean != nil && *m.ValueBoolean {
			return true
		}
	}
	if ext, ok := fhir.FindExtension(it.Extension, extCertificationType); ok && ext.ValueCodeableConcept != nil {
		if c, ok := ext.ValueCodeableConcept.Code(sysX12CertType); ok && c.Code == "3" {
			return true
		}
	}
	return false
}

// claimCancelled: certification type 3 on the Claim withdraws the request.
func (r *request) claimCancelled() bool {
	if ext, ok := fhir.FindExtension(r.claim.Extension, extCertificationType); ok && ext.ValueCodeableConcept != nil {
		if c, ok := ext.ValueCodeableConcept.Code(sysX12CertType); ok && c.Code == "3" {
			return true
		}
	}
	return false
}

// expedited: level of service U (urgent) or 03 (emergency), or Claim.priority stat.
func (r *request) expedited() bool {
	if ext, ok := fhir.FindExtension(r.claim.Extension, extLevelOfService); ok && ext.ValueCodeableConcept != nil {
		if c, ok := ext.ValueCodeableConcept.Code(""); ok && (c.Code == "U" || c.Code == "03") {
			return true
		}
	}
	if c, ok := r.claim.Priority.Code(""); ok && c.Code == "stat" {
		return true
	}
	return false
}

// serviceContext is the part of a coverage.Service that is the same for
// every item: diagnoses, payer and plan.
func (r *request) serviceContext() coverage.Service {
	svc := coverage.Service{Diagnoses: r.diagnoses(nil), Providers: r.providerNPIs()}
	cov := r.coverage
	if cov == nil {
		return svc
	}
	for _, p := range cov.Payor {
		if p.Identifier != nil {
			svc.Payers = append(svc.Payers, coverage.PayerID{System: p.Identifier.System, Value: p.Identifier.Value})
		}
		if j := r.bundle.Resolve(p.Reference, r.bundle.Entry[r.coverageEntry].FullURL); j >= 0 {
			if org := r.party(j); org != nil {
				for _, id := range org.Identifier {
					svc.Payers = append(svc.Payers, coverage.PayerID{System: id.System, Value: id.Value})
				}
			}
		}
	}
	for _, cl := range cov.Class {
		if c, ok := cl.Type.Code(sysCoverageClass); ok && c.Code == "plan" {
			svc.Plan = cl.Value
		}
	}
	return svc
}

// diagnoses returns the Claim's coded diagnoses, limited to sequences when given.
func (r *request) diagnoses(sequences []int) []coverage.Code {
	var out []coverage.Code
	for _, d := range r.claim.Diagnosis {
		if len(sequences) > 0 && !containsInt(sequences, d.Sequence) {
			continue
		}
		if d.DiagnosisCodeableConcept != nil {
			for _, c := range d.DiagnosisCodeableConcept.Coding {
				out = append(out, coverage.Code{System: c.System, Code: c.Code})
			}
		}
	}
	return out
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// memberIDs are the patient's member/subscriber identifiers: Coverage
// identifiers of type MB, Coverage.subscriberId and the Patient's
// identifiers of type MB.
func (r *request) memberIDs() []string {
	var out []string
	if cov := r.coverage; cov != nil {
		for _, id := range cov.Identifier {
			out = append(out, id.Value)
		}
		out = append(out, cov.SubscriberID)
	}
	if p := r.party(r.patientEntry); p != nil {
		for _, id := range p.Identifier {
			if isMemberID(id) {
				out = append(out, id.Value)
			}
		}
	}
	return out
}

func isMemberID(id fhir.Identifier) bool {
	if c, ok := id.Type.Code(sysIdentifierType); ok && (c.Code == "MB" || c.Code == "SN") {
		return true
	}
	return id.Type == nil
}

// providerNPIs are the NPIs of the requesting provider and of every care
// team member (ordering and rendering providers), following PractitionerRole
// to its Practitioner and Organization.
func (r *request) providerNPIs() []string {
	var out []string
	from := r.claimFullURL()
	var visit func(ref *fhir.Reference, depth int)
	visit = func(ref *fhir.Reference, depth int) {
		if ref == nil || depth > 2 {
			return
		}
		if ref.Identifier != nil && ref.Identifier.System == sysNPI {
			out = append(out, ref.Identifier.Value)
		}
		p := r.party(r.bundle.Resolve(ref.Reference, from))
		if p == nil {
			return
		}
		out = append(out, p.IdentifierValue(sysNPI))
		visit(p.Practitioner, depth+1)
		visit(p.Organization, depth+1)
	}
	visit(r.claim.Provider, 0)
	for _, ct := range r.claim.CareTeam {
		visit(ct.Provider, 0)
	}
	return out
}

func (r *request) insurerIDs() []string {
	var out []string
	if p := r.party(r.insurerEntry); p != nil {
		for _, id := range p.Identifier {
			out = append(out, id.Key(), id.Value)
		}
	}
	return out
}

// senderIDs identify the submitting system for subscription filters: the
// X12 ISA06 interchange sender, and the requesting provider's identifiers
// (NPI and system|value), which is what conformance kits filter on.
func (r *request) senderIDs() []string {
	var out []string
	if ext, ok := fhir.FindExtension(r.claim.Extension, extTransmissionIDs); ok {
		if sub, ok := fhir.FindExtension(ext.Extension, "interchangeSenderID"); ok {
			out = append(out, sub.StringValue())
		}
	}
	if p := r.party(r.providerEntry); p != nil {
		for _, id := range p.Identifier {
			out = append(out, id.Value, id.Key())
		}
	}
	return out
}

// echoEntries are the request resources responses carry again: patient,
// insurer, requestor and the rendering provider.
func (r *request) echoEntries() []store.EchoEntry {
	var out []store.EchoEntry
	seen := map[int]bool{}
	index := map[string]int{} // by fullUrl
	add := func(i int, role string) {
		if i < 0 || seen[i] {
			return
		}
		seen[i] = true
		e := r.bundle.Entry[i]
		index[e.FullURL] = i
		ee := store.EchoEntry{FullURL: e.FullURL, Type: e.Type, Role: role, Resource: compactJSON(e.Resource), RefsKnown: true}
		refs, _ := r.references(i) // decoded at intake
		for _, ref := range refs {
			ee.Refs = append(ee.Refs, ref.Value)
		}
		out = append(out, ee)
	}
	add(r.patientEntry, "patient")
	add(r.insurerEntry, "insurer")
	add(r.providerEntry, "requestor")
	if i := r.renderingProvider(); i >= 0 {
		if seen[i] {
			for k := range out {
				if out[k].FullURL == r.bundle.Entry[i].FullURL {
					out = append(out, out[k])
					out[len(out)-1].Role = "provider"
					out = append(out[:k], out[k+1:]...)
					break
				}
			}
		} else {
			add(i, "provider")
		}
	}
	// The orders the items request, echoed when a modified item's addItem
	// points at them.
	for _, it := range r.claim.Item {
		if rs, ok := fhir.FindExtension(it.Extension, extRequestedService); ok && rs.ValueReference != nil {
			add(r.bundle.Resolve(rs.ValueReference.Reference, r.claimFullURL()), "service")
		}
	}
	// What those resources refer to in turn (a ServiceRequest's requester,
	// a PractitionerRole's Practitioner), so that no echoed reference
	// dangles in a response.
	for k := 0; k < len(out); k++ {
		for _, ref := range out[k].Refs {
			add(r.bundle.Resolve(ref, out[k].FullURL), "referenced")
		}
	}
	return out
}

// renderingProvider picks the Practitioner or Organization that will
// perform the services: the first care team member (a PractitionerRole is
// followed to its Practitioner), else the requesting provider.
func (r *request) renderingProvider() int {
	from := r.claimFullURL()
	for _, ct := range r.claim.CareTeam {
		if ct.Provider == nil {
			continue
		}
		j := r.bundle.Resolve(ct.Provider.Reference, from)
		if j < 0 {
			continue
		}
		switch r.bundle.Entry[j].Type {
		case "Practitioner", "Organization":
			return j
		case "PractitionerRole":
			if p := r.party(j); p != nil && p.Practitioner != nil {
				if k := r.bundle.Resolve(p.Practitioner.Reference, r.bundle.Entry[j].FullURL); k >= 0 {
					return k
				}
			}
		}
	}
	if i := r.providerEntry; i >= 0 {
		if t := r.bundle.Entry[i].Type; t == "Practitioner" || t == "Organization" {
			return i
		}
	}
	return -1
}

// summary holds display fields for the reviewer desk.
func (r *request) summary() store.Summary {
	var sm store.Summary
	if p := r.party(r.patientEntry); p != nil {
		sm.PatientName = humanName(p.Name)
	}
	if p := r.party(r.providerEntry); p != nil {
		sm.ProviderName = humanName(p.Name)
	}
	if p := r.party(r.insurerEntry); p != nil {
		sm.InsurerName = humanName(p.Name)
	}
	if ids := r.memberIDs(); len(ids) > 0 {
		sm.MemberID = ids[0]
	}
	for _, it := range r.claim.Item {
		if it.ProductOrService != nil && len(it.ProductOrService.Coding) > 0 {
			c := it.ProductOrService.Coding[0]
			sm.Services = append(sm.Services, strings.TrimSpace(c.Code+" "+c.Display))
		}
	}
	if c, ok := r.claim.Type.Code(""); ok {
		sm.Category = c.Code
	}
	return sm
}

// humanName renders a HumanName array or an Organization name string.
func humanName(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var names []struct {
		Text   string   `json:"text"`
		Family string   `json:"family"`
		Given  []string `json:"given"`
	}
	if json.Unmarshal(raw, &names) != nil || len(names) == 0 {
		return ""
	}
	n := names[0]
	if n.Text != "" {
		return n.Text
	}
	return strings.TrimSpace(strings.Join(append(n.Given, n.Family), " "))
}

// refNumbers are the authorization (REF-BB) and administrative reference
// (REF-NT) numbers the provider put on the Claim and its items.
func (r *request) refNumbers() []string {
	var out []string
	pick := func(exts []fhir.Extension) {
		for _, url := range []string{extAuthorizationNumber, extAdminReferenceNumber} {
			if e, ok := fhir.FindExtension(exts, url); ok {
				out = append(out, e.StringValue())
			}
		}
	}
	pick(r.claim.Extension)
	for _, it := range r.claim.Item {
		pick(it.Extension)
	}
	return out
}

func canonicalSystem(s string) string { return coverage.Canonical(s) }
