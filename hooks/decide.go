package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/priora/priora/coverage"
	"github.com/priora/priora/fhir"
	"github.com/priora/priora/members"
	"github.com/priora/priora/profiles"
	"github.com/priora/priora/store"
)

// orderTypes are the request resources CRD annotates.
var orderTypes = map[string]bool{
	"ServiceRequest": true, "DeviceRequest": true, "MedicationRequest": true, "NutritionOrder": true,
	"CommunicationRequest": true, "VisionPrescription": true,
}

const npiSystem = "http://hl7.org/fhir/sid/us-npi"

// call is one hook invocation being answered.
type call struct {
	s       *Service
	hook    string
	req     Request
	hc      hookContext
	version string
	st      settings
	d       *data
	rules   *coverage.Rules
	now     time.Time
	// callID is the call record's id; assertions made are numbered from it
	// (store.AssertionID), nAssertions counts them.
	callID      string
	nAssertions int

	targets []*target
	// technical, when set, says why EHR data needed for coverage could not
	// be had: coverage information is then indeterminate (CRD resp-43).
	technical string
	cov       *coverageRes
	payers    []coverage.PayerID
	// patientMissing is true when the EHR says the patient does not exist.
	patientMissing bool
	// roster is the member roster's answer (eligibility.go); nil when no
	// roster is in force.
	roster *members.Result
	// parties are the Patient and Coverage as criteria read them, parsed
	// once per call for all its targets (criteriaRequest).
	parties struct {
		once              sync.Once
		patient, coverage []profiles.Value
	}
}

// target is one resource the call is about: an order, an appointment or,
// on encounter hooks, the encounter.
type target struct {
	ref string
	raw json.RawMessage
	o   order
	// basedOn are orders an appointment is based on, when known.
	basedOn []order
	// unreadable are the order's members that could not be decoded.
	unreadable []string
}

// gather collects the call's resources in steps: the targets the context
// names, a plan of what prefetch lacks, that plan fetched from the EHR in
// parallel under one deadline, and the results put in place; then it
// chooses the coverage (hook-13).
func (c *call) gather(ctx context.Context) error {
	c.contextTargets()
	p := c.planQueries()
	if err := c.fetch(ctx, p); err != nil {
		return err
	}
	c.applyResults(ctx, p)
	c.resolveBasedOn()
	if c.technical != "" {
		return nil
	}
	if err := c.chooseCoverage(p.covs); err != nil {
		return err
	}
	return c.checkRoster(ctx)
}

// queryPlan is what a call must fetch from the EHR and where each result
// goes.
type queryPlan struct {
	// qs are all the queries; nil once fetch decides not to query.
	qs                       []*query
	covQ, patQ, encQ         *query
	orderQs, basedOnQs       []*query
	needCoverage, needOrders bool
	// covs are the Coverage resources in hand: prefetched, then found.
	covs []json.RawMessage
}

// contextTargets makes targets of the orders or appointments in context.
func (c *call) contextTargets() {
	hc := &c.hc
	switch c.hook {
	case OrderSign, OrderSelect:
		sel := map[string]bool{}
		for _, s := range hc.Selections {
			sel[relativeRef(s)] = true
		}
		for _, e := range hc.DraftOrders.Entry {
			h, ok := c.d.add(e.Resource)
			if !ok || !orderTypes[h.ResourceType] {
				continue
			}
			ref := h.ResourceType + "/" + h.ID
			if c.hook == OrderSelect && len(sel) > 0 && !sel[ref] {
				continue
			}
			c.addTarget(ref, e.Resource)
		}
	case AppointmentBook:
		for _, e := range hc.Appointments.Entry {
			if h, ok := c.d.add(e.Resource); ok && h.ResourceType == "Appointment" {
				c.addTarget(h.ResourceType+"/"+h.ID, e.Resource)
			}
		}
	}
}

// planQueries looks for what the call needs in prefetch and plans a query
// for what is missing: dispatched orders, the patient's coverage, the
// patient, the encounter and the orders appointments are based on.
func (c *call) planQueries() *queryPlan {
	hc := &c.hc
	p := &queryPlan{}
	if c.hook == OrderDispatch {
		dispatched := hc.DispatchedOrders
		if len(dispatched) == 0 {
			dispatched = []string{hc.Order}
		}
		for _, ref := range dispatched {
			typ, id, ok := splitRef(ref)
			if !ok || !orderTypes[typ] {
				continue
			}
			if raw, ok := c.d.lookup(typ + "/" + id); ok {
				c.addTarget(typ+"/"+id, raw)
				continue
			}
			switch c.d.keys[prefetchKey(typ)] {
			case keyNull, keyProvided:
				continue // the client looked: no such order
			case keyError:
				c.d.fetchFailed++
				continue
			}
			p.needOrders = true
			q := &query{path: readPath(typ, id)}
			p.orderQs = append(p.orderQs, q)
		}
		p.qs = append(p.qs, p.orderQs...)
	}

	// Coverage: the "coverage" key, else Coverage resources under any key
	// (clients may name keys their own way), else a query.
	switch c.d.keys["coverage"] {
	case keyProvided:
		p.covs = ofTypeIn(c.d.keyed["coverage"], "Coverage")
	case keyNull:
	case keyError:
		c.technical = "the EHR could not provide the patient's coverage"
	default:
		p.covs = c.d.ofType("Coverage")
		if len(p.covs) == 0 {
			p.needCoverage = true
			p.covQ = &query{path: "Coverage?patient=" + urlQuery(hc.PatientID) + "&status=active"}
			p.qs = append(p.qs, p.covQ)
		}
	}
	if _, ok := c.d.lookup("Patient/" + hc.PatientID); !ok {
		switch c.d.keys["patient"] {
		case keyNull:
			c.patientMissing = true
		case keyAbsent:
			if fhirID.MatchString(hc.PatientID) {
				p.patQ = &query{path: readPath("Patient", hc.PatientID)}
				p.qs = append(p.qs, p.patQ)
			}
		}
	}
	if c.hook == EncounterStart || c.hook == EncounterDischarge {
		if raw, ok := c.d.lookup("Encounter/" + hc.EncounterID); ok {
			c.addTarget("Encounter/"+hc.EncounterID, raw)
		} else if fhirID.MatchString(hc.EncounterID) && c.d.keys["encounter"] == keyAbsent {
			p.encQ = &query{path: readPath("Encounter", hc.EncounterID)}
			p.qs = append(p.qs, p.encQ)
		}
	}
	if c.hook == AppointmentBook {
		seen := map[string]bool{}
		for _, t := range c.targets {
			for _, b := range t.o.BasedOn {
				typ, id, ok := splitRef(b.Reference)
				if !ok || typ != "ServiceRequest" || seen[typ+"/"+id] {
					continue
				}
				seen[typ+"/"+id] = true
				if _, ok := c.d.lookup(typ + "/" + id); !ok {
					q := &query{path: readPath(typ, id)}
					p.basedOnQs = append(p.basedOnQs, q)
				}
			}
		}
		p.qs = append(p.qs, p.basedOnQs...)
	}
	return p
}

// fetch runs the plan against the EHR's FHIR server. Without a fhirServer
// the call cannot go on when it lacks the coverage or dispatched orders
// (412); other missing data is done without.
func (c *call) fetch(ctx context.Context, p *queryPlan) error {
	if len(p.qs) > 0 {
		if c.req.FHIRServer == "" {
			if p.needCoverage || p.needOrders {
				what := "the patient's Coverage"
				if !p.needCoverage {
					what = "the dispatched orders"
				}
				return errorf(fhir.PreconditionFailed, "%s were not prefetched and no fhirServer was given to query", what)
			}
			p.qs = nil
		} else {
			// The EHR's token goes only where the outbound policy allows:
			// https, no literal loopback, private or special-purpose
			// address (a DNS name is checked again when dialled).
			if err := c.s.cfg.Outbound.CheckURL(c.req.FHIRServer); err != nil {
				return errorf(fhir.Invalid, "fhirServer %v", err)
			}
			e := &ehr{client: c.s.client, base: strings.TrimRight(c.req.FHIRServer, "/"), max: c.s.cfg.MaxFetchBytes}
			if a := c.req.FHIRAuthorization; a != nil {
				e.token = a.AccessToken
			}
			fctx, cancel := context.WithTimeout(ctx, c.s.cfg.FetchTimeout)
			e.fetchAll(fctx, p.qs)
			cancel()
			for _, q := range p.qs {
				c.d.fetched++
				if q.err != nil && !errors.Is(q.err, errNotFound) {
					c.d.fetchFailed++
				}
			}
		}
	}
	return nil
}

// applyResults puts what the EHR answered in place: coverages, the
// patient's absence, the encounter, based-on and dispatched orders.
func (c *call) applyResults(ctx context.Context, p *queryPlan) {
	hc := &c.hc
	if p.covQ != nil && len(p.qs) > 0 {
		if p.covQ.err != nil {
			c.technical = "the EHR's FHIR server did not answer the coverage query"
		} else {
			for _, r := range searchEntries(p.covQ.body) {
				if h, ok := c.d.add(r); ok && h.ResourceType == "Coverage" {
					p.covs = append(p.covs, r)
				}
			}
		}
	}
	if p.patQ != nil && len(p.qs) > 0 && errors.Is(p.patQ.err, errNotFound) {
		c.patientMissing = true
	}
	if p.encQ != nil && p.encQ.err == nil && len(p.qs) > 0 {
		c.d.add(p.encQ.body)
		c.addTarget("Encounter/"+hc.EncounterID, p.encQ.body)
	}
	for _, q := range p.basedOnQs {
		if q.err == nil && len(p.qs) > 0 {
			c.d.add(q.body)
		}
	}
	for i, q := range p.orderQs {
		switch {
		case len(p.qs) == 0:
		case q.err == nil:
			if h, ok := c.d.add(q.body); ok && orderTypes[h.ResourceType] {
				c.addTarget(h.ResourceType+"/"+h.ID, q.body)
			}
		case !errors.Is(q.err, errNotFound):
			c.s.log.WarnContext(ctx, "cds hook: dispatched order not fetched", "hook_instance", c.req.HookInstance, "order", i, "err", q.err)
		}
	}
}

// resolveBasedOn links each target to the orders it is based on that the
// call holds.
func (c *call) resolveBasedOn() {
	for _, t := range c.targets {
		for _, b := range t.o.BasedOn {
			if raw, ok := c.d.lookup(b.Reference); ok {
				var o order
				if unmarshal(raw, &o) == nil && orderTypes[o.ResourceType] {
					t.basedOn = append(t.basedOn, o)
				}
			}
		}
	}
}

// prefetchKey is the standard prefetch key of an order type, such as
// serviceRequests for ServiceRequest.
func prefetchKey(typ string) string {
	return strings.ToLower(typ[:1]) + typ[1:] + "s"
}

func (c *call) addTarget(ref string, raw json.RawMessage) {
	t := &target{ref: ref, raw: raw}
	if unmarshal(raw, &t.o) != nil {
		// A malformed member (the CDS Hooks sandbox's MedicationRequest
		// sends category as an object) does not hide the others: the order
		// is read member by member, and what cannot be read is left out.
		t.o = order{}
		t.unreadable = decodeMembers(raw, &t.o)
	}
	c.targets = append(c.targets, t)
}

// decodeMembers decodes the members of a JSON object into v one at a
// time, and returns the names of those that do not decode.
func decodeMembers(raw json.RawMessage, v any) []string {
	// encoding/json itself: each member merges into v, which a failed
	// unmarshal would zero.
	var members map[string]json.RawMessage
	if json.Unmarshal(raw, &members) != nil {
		return []string{"(the whole resource)"}
	}
	var bad []string
	for k, val := range members {
		one, err := json.Marshal(map[string]json.RawMessage{k: val})
		if err != nil || json.Unmarshal(one, v) != nil {
			bad = append(bad, k)
		}
	}
	slices.Sort(bad)
	return bad
}

func ofTypeIn(rs []json.RawMessage, typ string) []json.RawMessage {
	var out []json.RawMessage
	for _, r := range rs {
		if h, _ := head(r); h.ResourceType == typ {
			out = append(out, r)
		}
	}
	return out
}

func urlQuery(s string) string {
	r := strings.NewReplacer("&", "%26", "#", "%23", "+", "%2B", " ", "%20", "?", "%3F")
	return r.Replace(s)
}

// chooseCoverage applies CRD hook-13: exactly one Coverage, and for a payer
// this instance serves, else 400.
func (c *call) chooseCoverage(raws []json.RawMessage) error {
	var covs []*coverageRes
	for _, r := range raws {
		var cv coverageRes
		if unmarshal(r, &cv) == nil {
			covs = append(covs, &cv)
		}
	}
	if len(covs) > 1 {
		// Prefer active coverages, then the one the orders name.
		active := slices.DeleteFunc(slices.Clone(covs), func(cv *coverageRes) bool { return cv.Status != "" && cv.Status != "active" })
		if len(active) > 0 {
			covs = active
		}
		if len(covs) > 1 {
			named := map[string]bool{}
			for _, t := range c.targets {
				for _, in := range t.o.Insurance {
					named[relativeRef(in.Reference)] = true
				}
			}
			chosen := slices.DeleteFunc(slices.Clone(covs), func(cv *coverageRes) bool { return !named["Coverage/"+cv.ID] })
			if len(chosen) == 1 {
				covs = chosen
			}
		}
	}
	switch {
	case len(covs) == 0:
		return errorf(fhir.Invalid, "no Coverage was provided or found for the patient; CRD needs the patient's one primary coverage (hook-13)")
	case len(covs) > 1:
		return errorf(fhir.Invalid, "%d Coverages were provided or found for the patient; CRD needs exactly one (hook-13)", len(covs))
	}
	c.cov = covs[0]
	c.payers = c.payerIDs(c.cov)
	want := c.s.cfg.PayerIDs
	if len(want) == 0 {
		want = c.rules.Payers
	}
	if len(want) > 0 && !servedBy(c.payers, want) {
		return errorf(fhir.Invalid, "the Coverage is not for a payer this service answers for (hook-13)")
	}
	return nil
}

func servedBy(have, want []coverage.PayerID) bool {
	for _, h := range have {
		for _, w := range want {
			if h.Value == w.Value && (w.System == "" || h.System == w.System) {
				return true
			}
		}
	}
	return false
}

// payerIDs collects the payor's identifiers: on the reference, or on the
// referenced Organization (contained or prefetched).
func (c *call) payerIDs(cv *coverageRes) []coverage.PayerID {
	var out []coverage.PayerID
	addOrg := func(raw json.RawMessage) {
		var org struct {
			Identifier []fhir.Identifier `json:"identifier"`
		}
		if unmarshal(raw, &org) == nil {
			for _, id := range org.Identifier {
				out = append(out, coverage.PayerID{System: id.System, Value: id.Value})
			}
		}
	}
	for _, p := range cv.Payor {
		if p.Identifier != nil && p.Identifier.Value != "" {
			out = append(out, coverage.PayerID{System: p.Identifier.System, Value: p.Identifier.Value})
		}
		if strings.HasPrefix(p.Reference, "#") {
			for _, raw := range cv.Contained {
				var h resourceHead
				if unmarshal(raw, &h) == nil && "#"+h.ID == p.Reference {
					addOrg(raw)
				}
			}
		} else if raw, ok := c.d.lookup(p.Reference); ok {
			addOrg(raw)
		}
	}
	return out
}

// memberID is the Coverage's subscriber or member number.
func memberID(cv *coverageRes) string {
	if cv.SubscriberID != "" {
		return cv.SubscriberID
	}
	for _, id := range cv.Identifier {
		if cc := id.Type; cc != nil {
			if cd, ok := cc.Code("http://terminology.hl7.org/CodeSystem/v2-0203"); ok && (cd.Code == "MB" || cd.Code == "SN") {
				return id.Value
			}
		}
	}
	return ""
}

// coverageProblem is the coverage-level outcome that overrides the rules:
// technical failure, member not found, coverage not active or not this
// patient's. "" when the coverage is usable.
func (c *call) coverageProblem() (covered, reason, text string) {
	switch {
	case c.technical != "":
		return "indeterminate", reasonTechnical, "Coverage could not be determined: " + c.technical + "."
	case c.patientMissing:
		return "not-covered", reasonNoMemberFound, "The patient could not be found, so no member could be matched."
	case memberID(c.cov) == "":
		return "not-covered", reasonNoMemberFound, "The coverage carries no subscriber or member identifier, so no member could be matched."
	}
	if b := c.cov.Beneficiary; b != nil && b.Reference != "" && relativeRef(b.Reference) != "Patient/"+c.hc.PatientID {
		return "not-covered", reasonCoverageNotFound, "The coverage provided is not the patient's own coverage."
	}
	if covered, reason, text := c.rosterProblem(); covered != "" {
		return covered, reason, text
	}
	if c.roster != nil {
		return "", "", "" // the payer's roster, not the EHR's Coverage, says the coverage is in effect
	}
	if c.cov.Status != "" && c.cov.Status != "active" {
		return "not-covered", reasonNoActiveCoverage, "The patient's coverage is not active."
	}
	today := c.now.Format(time.DateOnly)
	if p := c.cov.Period; p != nil {
		if p.Start != "" && len(p.Start) >= 10 && p.Start[:10] > today || p.End != "" && len(p.End) >= 10 && p.End[:10] < today {
			return "not-covered", reasonNoActiveCoverage, "The patient's coverage is not in effect today."
		}
	}
	return "", "", ""
}

// coverageRef is the coverage-information coverage reference.
func (c *call) coverageRef() fhir.Reference {
	if c.cov == nil {
		return fhir.Reference{Display: "The patient's coverage (not retrieved from the EHR)"}
	}
	if c.cov.ID == "" {
		return fhir.Reference{Display: "The patient's coverage"}
	}
	return fhir.Reference{Reference: "Coverage/" + c.cov.ID}
}

// payerName labels cards with the insurer the patient knows (CRD resp-4).
func (c *call) payerName() string {
	if c.cov != nil {
		for _, p := range c.cov.Payor {
			if p.Display != "" {
				return p.Display
			}
		}
	}
	if n := c.rules.Defaults.PayerName; n != "" {
		return n
	}
	return "Priora"
}

// service is what the coverage rules see of a target.
func (c *call) service(t *target) coverage.Service {
	s := coverage.Service{Payers: c.payers}
	if c.roster != nil {
		v := c.roster.View()
		s.Member = &v
	}
	if c.roster != nil && c.roster.Member != nil {
		s.Plan = c.roster.Plan(0)
	} else if c.cov != nil {
		for _, cl := range c.cov.Class {
			if cl.Type != nil {
				if cd, ok := cl.Type.Code(""); ok && cd.Code == "plan" {
					s.Plan = cl.Value
				}
			}
		}
	}
	addCC := func(cc *fhir.CodeableConcept) {
		if cc == nil {
			return
		}
		for _, cd := range cc.Coding {
			if cd.Code != "" {
				s.Codes = append(s.Codes, coverage.Code{System: cd.System, Code: cd.Code, Display: cd.Display})
			}
		}
	}
	addExt := func(cw *codeWithExt) {
		if cw == nil {
			return
		}
		addCC(&fhir.CodeableConcept{Coding: cw.Coding})
		for _, e := range cw.Extension {
			if e.URL == billingOptionURL { // CRD billopt-3: consider the EHR's billing codes
				addCC(e.ValueCodeableConcept)
			}
		}
	}
	addOrder := func(o *order) {
		addExt(o.Code)
		addExt(o.CodeCodeableConcept)
		addExt(o.MedicationCodeableConcept)
		for _, e := range o.Extension {
			if e.URL == billingOptionURL {
				addCC(e.ValueCodeableConcept)
			}
		}
		for i := range o.ServiceType {
			addCC(&o.ServiceType[i])
		}
		if o.OralDiet != nil {
			for i := range o.OralDiet.Type {
				addCC(&o.OralDiet.Type[i])
			}
		}
		if o.EnteralFormula != nil {
			addCC(o.EnteralFormula.BaseFormulaType)
		}
		for _, sp := range o.Supplement {
			addCC(sp.Type)
		}
		for _, p := range o.Payload {
			addCC(p.ContentCodeableConcept)
		}
		for _, l := range o.LensSpecification {
			addCC(l.Product)
		}
		if o.ResourceType == "CommunicationRequest" {
			for i := range o.Category {
				addCC(&o.Category[i])
			}
		}
		if o.CodeReference != nil {
			if raw, ok := c.d.lookup(o.CodeReference.Reference); ok {
				var dev struct {
					Type *fhir.CodeableConcept `json:"type"`
				}
				if unmarshal(raw, &dev) == nil {
					addCC(dev.Type)
				}
			}
		}
		if o.MedicationReference != nil {
			if raw, ok := c.d.lookup(o.MedicationReference.Reference); ok {
				var med struct {
					Code *fhir.CodeableConcept `json:"code"`
				}
				if unmarshal(raw, &med) == nil {
					addCC(med.Code)
				}
			}
		}
		for i := range o.ReasonCode {
			for _, cd := range o.ReasonCode[i].Coding {
				s.Diagnoses = append(s.Diagnoses, coverage.Code{System: cd.System, Code: cd.Code})
			}
		}
		switch {
		case o.QuantityQuantity != nil:
			s.Quantity = o.QuantityQuantity.Float()
		case o.DispenseRequest != nil && o.DispenseRequest.Quantity != nil:
			s.Quantity = o.DispenseRequest.Quantity.Float()
		}
	}
	addOrder(&t.o)
	for i := range t.basedOn {
		addOrder(&t.basedOn[i])
	}
	s.Today = c.now.Format(time.DateOnly)
	s.LoadRequest = func() *coverage.Request { return c.criteriaRequest(t) }
	return s
}

// criteriaRequest is what criteria read in a hook call: the order (%item,
// and the focus), the patient and the coverage. There is no Claim and no
// questionnaire response yet, so criteria on them stay unknown and the
// cards ask for them.
func (c *call) criteriaRequest(t *target) *coverage.Request {
	parse := func(raw json.RawMessage, ok bool) []profiles.Value {
		if !ok || len(raw) == 0 {
			return nil
		}
		v, err := profiles.ParseResource(raw)
		if err != nil {
			return nil
		}
		return []profiles.Value{v}
	}
	c.parties.once.Do(func() {
		if c.rules.UsesVariable("patient") {
			c.parties.patient = parse(c.d.lookup("Patient/" + c.hc.PatientID))
		}
		if c.cov != nil && c.cov.ID != "" && c.rules.UsesVariable("coverage") {
			c.parties.coverage = parse(c.d.lookup("Coverage/" + c.cov.ID))
		}
	})
	req := &coverage.Request{Item: parse(t.raw, true), Patient: c.parties.patient, Coverage: c.parties.coverage}
	req.Bundle = req.Item
	return req
}

// requesterNPIs are the NPIs of the target's ordering provider and of the
// hook's user, as far as the prefetched data shows them.
func (c *call) requesterNPIs(t *target) []string {
	var out []string
	var visit func(ref string, depth int)
	visit = func(ref string, depth int) {
		raw, ok := c.d.lookup(ref)
		if !ok || depth > 1 {
			return
		}
		var p fhir.Party
		if unmarshal(raw, &p) != nil {
			return
		}
		if v := p.IdentifierValue(npiSystem); v != "" {
			out = append(out, v)
		}
		if p.ResourceType == "PractitionerRole" && p.Practitioner != nil {
			visit(p.Practitioner.Reference, depth+1)
		}
	}
	for _, r := range []*fhir.Reference{t.o.Requester, t.o.Orderer, t.o.Prescriber} {
		if r != nil {
			visit(r.Reference, 0)
		}
	}
	if c.hc.UserID != "" {
		visit(c.hc.UserID, 0)
	}
	return out
}

// nextAssertionID is the id of the call's next coverage assertion.
func (c *call) nextAssertionID() string {
	c.nAssertions++
	return store.AssertionID(c.callID, c.nAssertions)
}

// assess is the coverage information for one target under the rules.
func (c *call) assess(t *target, svc coverage.Service) (coverageInfo, coverage.Outcome) {
	ci := coverageInfo{
		Coverage:    c.coverageRef(),
		Date:        c.now.Format(time.DateOnly),
		AssertionID: c.nextAssertionID(),
	}
	if covered, reason, text := c.coverageProblem(); covered != "" {
		ci.Covered = covered
		ci.Reasons = []fhir.CodeableConcept{reasonCode(reason, text)}
		ci.normalize(c.version, text)
		return ci, coverage.Outcome{}
	}
	if text := unreadService(t, svc); text != "" {
		// Never a guess: without the service no policy can be applied.
		ci.Covered = "indeterminate"
		ci.Reasons = []fhir.CodeableConcept{{Text: text}}
		ci.normalize(c.version, text)
		return ci, coverage.Outcome{}
	}
	out := c.rules.Decide(svc)
	ans := c.rules.CRDAnswer(out)
	crd, reason := ans.CRD, ans.Reason
	ci.Covered, ci.PANeeded = crd.Covered, crd.PANeeded
	if ci.PANeeded != "satisfied" && len(crd.GoldCard) > 0 {
		for _, npi := range c.requesterNPIs(t) {
			if slices.Contains(crd.GoldCard, npi) {
				ci.PANeeded = "satisfied"
				break
			}
		}
	}
	if ci.PANeeded == "satisfied" {
		if c.st.on(typeUnsolicitedDeterm) {
			ci.Reasons = append(ci.Reasons, reasonCode(reasonGoldCard, "Prior authorization is waived: "+reason))
			ci.SatisfiedPAID = newID("PA")
		} else {
			ci.PANeeded = "auth-needed" // what-if call: no unsolicited determination (found-35)
		}
	}
	if crd.DocNeeded != "" && crd.DocNeeded != "no-doc" {
		ci.DocNeeded = []string{crd.DocNeeded}
	}
	if len(out.Unknown()) > 0 && len(ci.DocNeeded) == 0 && ci.PANeeded != "satisfied" && ci.PANeeded != "no-auth" {
		// Criteria whose data the order lacks: documentation decides them.
		ci.DocNeeded = []string{"clinical"}
	}
	ci.DocPurpose = slices.Clone(crd.DocPurpose)
	ci.InfoNeeded = slices.Clone(crd.InfoNeeded)
	ci.Questionnaire = slices.Clone(crd.Questionnaire)
	if !primary(c.hook) { // hook-19: no documentation asks on secondary hooks
		ci.DocNeeded, ci.DocPurpose, ci.Questionnaire = nil, nil, nil
	}
	for _, code := range svc.Codes {
		sys := coverage.Canonical(code.System)
		if (sys == coverage.CPT || sys == coverage.HCPCS) && !slices.ContainsFunc(ci.BillingCodes, func(b fhir.Coding) bool { return b.System == sys && b.Code == code.Code }) {
			ci.BillingCodes = append(ci.BillingCodes, fhir.Coding{System: sys, Code: code.Code})
		}
	}
	if !slices.ContainsFunc(ci.Reasons, func(r fhir.CodeableConcept) bool { return len(r.Coding) > 0 }) {
		ci.Reasons = append(ci.Reasons, fhir.CodeableConcept{Text: reason})
	}
	if crd.PolicyURL != "" {
		ci.Details = append(ci.Details, detail{Category: "cat-other", Code: fhir.Coding{System: crdTempSystem, Code: "policy-link"},
			ValueURL: crd.PolicyURL, Qualification: crd.PolicyTitle})
	}
	if out.Decision.Action == coverage.Modify && out.Decision.AuthorizeQuantity > 0 {
		q := json.Number(formatFloat(out.Decision.AuthorizeQuantity))
		ci.Details = append(ci.Details, detail{Category: "cat-limitation", Code: fhir.Coding{System: crdTempSystem, Code: "allowed-quantity"},
			ValueQuantity: &fhir.Quantity{Value: &q}, Qualification: out.Decision.Note})
	}
	for _, comp := range crd.Companions {
		if ref, ok := c.draftWithCode(comp); ok && ref != t.ref {
			ci.Dependencies = append(ci.Dependencies, fhir.Reference{Reference: ref})
		}
	}
	if crd.Contact != "" {
		ci.Contacts = []contactDetail{parseContact(c.payerName(), crd.Contact)}
	}
	if ci.Covered != "not-covered" && ans.AuthorizationDays > 0 {
		ci.ExpiryDate = c.now.AddDate(0, 0, ans.AuthorizationDays).Format(time.DateOnly)
	}
	ci.normalize(c.version, reason)
	return ci, out
}

// unreadService explains why the service a target orders cannot be told,
// or returns "": it carries no code Priora could read.
func unreadService(t *target, svc coverage.Service) string {
	if len(svc.Codes) > 0 || t.o.ResourceType == "Encounter" {
		return ""
	}
	text := "Coverage could not be determined: the ordered service could not be read (" + t.ref + " carries no code"
	if len(t.unreadable) > 0 {
		text += "; unreadable: " + strings.Join(t.unreadable, ", ")
	}
	return text + ")."
}

// draftWithCode finds another order of the call with a code.
func (c *call) draftWithCode(code coverage.Code) (string, bool) {
	for _, t := range c.targets {
		for _, sc := range c.service(t).Codes {
			if coverage.Canonical(sc.System) == coverage.Canonical(code.System) && sc.Code == code.Code {
				return t.ref, true
			}
		}
	}
	return "", false
}

func formatFloat(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// decision is one target's assessment.
type decision struct {
	t   *target
	svc coverage.Service
	ci  coverageInfo
	out coverage.Outcome
	// annotate is false when no system action is due (the order already
	// carries the same coverage information, or the hook does not annotate).
	annotate bool
	// unread is true when the ordered service could not be read: the
	// answer says so, and no coverage assertion is stored.
	unread bool
}

// respond builds the response and the assertions to store.
func (c *call) respond(ctx context.Context, who Caller) (*Response, []store.CoverageAssertion) {
	resp := &Response{alwaysActions: c.version == crdVersion20 && primary(c.hook)}
	covInfoOn := c.st.on(typeCoverageInfo)
	var decisions []*decision
	for _, t := range c.targets {
		if t.o.ResourceType == "Encounter" {
			// Encounter hooks carry no order: only a coverage-level problem
			// is news worth annotating the encounter with.
			if covered, _, _ := c.coverageProblem(); covered == "" {
				continue
			}
		}
		svc := c.service(t)
		ci, out := c.assess(t, svc)
		d := &decision{t: t, svc: svc, ci: ci, out: out, annotate: covInfoOn, unread: unreadService(t, svc) != ""}
		if d.unread {
			c.s.log.Warn("cds hook: the ordered service could not be read; coverage not determined", "hook_instance", c.req.HookInstance, "order", t.ref, "unreadable", t.unreadable)
		}
		if sig, ok := existingCoverageInfo(t.o.Extension); ok && sig == ci.signature() {
			d.annotate = false // resp-35: nothing new
		}
		decisions = append(decisions, d)
	}

	var assertions []store.CoverageAssertion
	for _, d := range decisions {
		if !d.annotate {
			continue
		}
		if err := d.ci.check(); err != nil {
			c.s.log.ErrorContext(ctx, "cds hook: coverage information breaks an invariant", "hook_instance", c.req.HookInstance, "err", err)
			continue
		}
		extJSON, err := json.Marshal(d.ci.extension())
		if err != nil {
			continue
		}
		res, err := withExtensions(d.t.raw, coverageInfoURL, []json.RawMessage{extJSON})
		if err != nil {
			continue
		}
		resp.SystemActions = append(resp.SystemActions, Action{
			Type:        "update",
			Description: actionDescription(d),
			Resource:    res,
		})
		if !d.unread {
			assertions = append(assertions, c.assertion(d, who))
		}
	}
	resp.Cards = c.cards(decisions)
	return resp, assertions
}

func actionDescription(d *decision) string {
	var b strings.Builder
	b.WriteString("Coverage information for ")
	b.WriteString(d.t.ref)
	b.WriteString(": ")
	b.WriteString(d.ci.Covered)
	if d.ci.PANeeded != "" {
		b.WriteString(", prior authorization ")
		b.WriteString(d.ci.PANeeded)
	}
	if len(d.ci.DocNeeded) > 0 {
		b.WriteString(", documentation ")
		b.WriteString(strings.Join(d.ci.DocNeeded, "/"))
	}
	return b.String()
}

func (c *call) assertion(d *decision, who Caller) store.CoverageAssertion {
	a := store.CoverageAssertion{
		ID: d.ci.AssertionID, Tenant: who.Tenant, Client: who.Client,
		Hook: c.hook, HookInstance: c.req.HookInstance, FHIRServer: c.req.FHIRServer,
		Order: d.t.ref, PatientID: c.hc.PatientID, Coverage: d.ci.Coverage.Reference,
		Covered: d.ci.Covered, PANeeded: d.ci.PANeeded, DocNeeded: d.ci.DocNeeded, InfoNeeded: d.ci.InfoNeeded,
		PASatisfied: d.ci.PANeeded == "satisfied", SatisfiedPAID: d.ci.SatisfiedPAID,
		Date: c.now.UTC(),
	}
	if d.out.Rule != nil || d.ci.Covered != "indeterminate" {
		a.RuleID = d.out.RuleID()
		a.RulesVersion = d.out.Version
	}
	if c.cov != nil {
		a.MemberID = memberID(c.cov)
	}
	a.Quantity = d.svc.Quantity
	switch o := d.t.o; {
	case o.OccurrencePeriod != nil:
		a.PeriodStart, a.PeriodEnd = o.OccurrencePeriod.Start, o.OccurrencePeriod.End
	case o.OccurrenceDateTime != "":
		a.PeriodStart, a.PeriodEnd = o.OccurrenceDateTime, o.OccurrenceDateTime
	}
	if a.PASatisfied && d.out.Rule != nil && d.out.Rule.CRD.PANeeded != "satisfied" {
		for _, npi := range c.requesterNPIs(d.t) {
			if slices.Contains(d.out.Rule.CRD.GoldCard, npi) {
				a.GoldCardNPI = npi
				break
			}
		}
	}
	for _, p := range c.payers {
		a.PayerIDs = append(a.PayerIDs, p.System+"|"+p.Value)
	}
	for _, cd := range d.svc.Codes {
		a.Codes = append(a.Codes, store.AssertionCode{System: coverage.Canonical(cd.System), Code: cd.Code, Display: cd.Display})
	}
	for _, r := range d.ci.Reasons {
		for _, cd := range r.Coding {
			a.Reasons = append(a.Reasons, cd.Code)
		}
	}
	if d.ci.ExpiryDate != "" {
		if t, err := time.Parse(time.DateOnly, d.ci.ExpiryDate); err == nil {
			a.Expires = t.Add(24*time.Hour - time.Nanosecond) // valid through the expiry date
		}
	}
	return a
}
