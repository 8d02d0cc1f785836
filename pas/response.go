package pas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

// claimResponse is the PAS ClaimResponse Priora writes. Field order is
// output order: resourceType first, as readers expect.
type claimResponse struct {
	ResourceType         string                `json:"resourceType"`
	ID                   string                `json:"id"`
	Meta                 *fhir.Meta            `json:"meta,omitempty"`
	Extension            []fhir.Extension      `json:"extension,omitempty"`
	Identifier           []fhir.Identifier     `json:"identifier,omitempty"`
	Status               string                `json:"status"`
	Type                 *fhir.CodeableConcept `json:"type"`
	Use                  string                `json:"use"`
	Patient              *fhir.Reference       `json:"patient"`
	Created              string                `json:"created"`
	Insurer              *fhir.Reference       `json:"insurer"`
	Requestor            *fhir.Reference       `json:"requestor,omitempty"`
	Request              *fhir.Reference       `json:"request"`
	Outcome              string                `json:"outcome"`
	Disposition          string                `json:"disposition,omitempty"`
	PreAuthRef           string                `json:"preAuthRef,omitempty"`
	PreAuthPeriod        *fhir.Period          `json:"preAuthPeriod,omitempty"`
	Item                 []crItem              `json:"item,omitempty"`
	AddItem              []crAddItem           `json:"addItem,omitempty"`
	Adjudication         []adjudication        `json:"adjudication,omitempty"`
	ProcessNote          []crNote              `json:"processNote,omitempty"`
	CommunicationRequest []fhir.Reference      `json:"communicationRequest,omitempty"`
	Error                []crError             `json:"error,omitempty"`
}

type crItem struct {
	Extension    []fhir.Extension `json:"extension,omitempty"`
	ItemSequence int              `json:"itemSequence"`
	NoteNumber   []int            `json:"noteNumber,omitempty"`
	Adjudication []adjudication   `json:"adjudication"`
}

type crAddItem struct {
	Extension               []fhir.Extension       `json:"extension,omitempty"`
	ItemSequence            []int                  `json:"itemSequence"`
	Provider                []fhir.Reference       `json:"provider,omitempty"`
	ProductOrService        *fhir.CodeableConcept  `json:"productOrService"`
	ServicedDate            *string                `json:"servicedDate,omitempty"`
	ServicedPeriod          *fhir.Period           `json:"servicedPeriod,omitempty"`
	LocationCodeableConcept *fhir.CodeableConcept  `json:"locationCodeableConcept,omitempty"`
	Modifier                []fhir.CodeableConcept `json:"modifier,omitempty"`
	UnitPrice               json.RawMessage        `json:"unitPrice,omitempty"`
	Quantity                *fhir.Quantity         `json:"quantity,omitempty"`
	NoteNumber              []int                  `json:"noteNumber,omitempty"`
	Adjudication            []adjudication         `json:"adjudication"`
}

type adjudication struct {
	Extension []fhir.Extension     `json:"extension,omitempty"`
	Category  fhir.CodeableConcept `json:"category"`
}

type crNote struct {
	Number int    `json:"number"`
	Type   string `json:"type,omitempty"`
	Text   string `json:"text"`
}

type crError struct {
	Extension []fhir.Extension     `json:"extension,omitempty"`
	Code      fhir.CodeableConcept `json:"code"`
}

// responseBundle is a PAS Response Bundle.
type responseBundle struct {
	ResourceType string           `json:"resourceType"`
	ID           string           `json:"id"`
	Meta         *fhir.Meta       `json:"meta,omitempty"`
	Identifier   *fhir.Identifier `json:"identifier"`
	Type         string           `json:"type"`
	Timestamp    string           `json:"timestamp"`
	Entry        []bundleEntry    `json:"entry"`
}

type bundleEntry struct {
	FullURL  string `json:"fullUrl"`
	Resource any    `json:"resource"`
}

// responseInput is everything a response version is built from.
type responseInput struct {
	auth *store.Authorization
	// claim is the latest Claim of the chain, with its client fullUrl.
	claim        *fhir.Claim
	claimFullURL string
	// claimItems are claim's items as sent (request.rawItems), when known:
	// an item record whose JSON is one of them is not decoded again.
	claimItems []json.RawMessage
	// bundleID is the submitter's transaction identifier echoed back.
	bundleID *fhir.Identifier
	now      time.Time
	number   int
	// businessErrors, when set, make the outcome "error".
	businessErrors []businessError
	// authDays is the default approval validity.
	authDays int
	// requestAbsent, when set, is the data-absent-reason code that stands
	// for ClaimResponse.request: the answer has no Claim to point at.
	requestAbsent string
	// noAuthorization leaves out Priora's authorization identifier: the
	// answer is about no authorization (an inquiry error).
	noAuthorization bool
}

// businessError is a PAS business error: an X12 901 reject reason carried
// in ClaimResponse.error rather than an HTTP failure.
type businessError struct {
	Code     string // X12 901 (AAA03)
	Followup string // X12 889 (AAA04)
	Path     string // FHIRPath starting at Bundle
	Element  string // X12 element, e.g. 2000F-UM02
	Note     string
}

// buildResponse renders the PAS Response Bundle for the chain's current
// state, and its outcome.
func buildResponse(in responseInput) ([]byte, string, error) {
	rb, outcome := responseBundleOf(in)
	out, err := writeBundle(rb)
	if err != nil {
		return nil, "", fmt.Errorf("pas: marshal response: %w", err)
	}
	return out, outcome, nil
}

// responseBundleOf assembles the PAS Response Bundle buildResponse writes.
func responseBundleOf(in responseInput) (responseBundle, string) {
	a := in.auth
	echo := newEchoSet(a.Echo)
	cr := claimResponse{
		ResourceType: "ClaimResponse",
		ID:           fmt.Sprintf("%s-%d", a.ID, in.number),
		Meta:         &fhir.Meta{Profile: []string{ProfileClaimResponse}},
		Status:       "active",
		Type:         in.claim.Type,
		Use:          "preauthorization",
		Created:      in.now.UTC().Format(time.RFC3339),
		Outcome:      "complete",
	}
	if cr.Type == nil {
		cr.Type = &fhir.CodeableConcept{Coding: []fhir.Coding{{System: "http://terminology.hl7.org/CodeSystem/claim-type", Code: "professional"}}}
	}
	cr.Identifier = append(cr.Identifier, in.claim.Identifier...)
	if !in.noAuthorization {
		cr.Identifier = append(cr.Identifier, fhir.Identifier{System: "urn:priora:authorization", Value: a.ID})
	}
	cr.Patient = echo.ref(in.claim.Patient, "Patient")
	cr.Insurer = echo.ref(in.claim.Insurer, "Organization")
	cr.Requestor = echo.ref(in.claim.Provider, "")
	cr.Request = claimRequestRef(in.claim, in.claimFullURL)
	if in.requestAbsent != "" {
		cr.Request = &fhir.Reference{Extension: []fhir.Extension{{URL: extDataAbsentReason, ValueCode: fhir.Ptr(in.requestAbsent)}}}
	}
	if ext, ok := fhir.FindExtension(in.claim.Extension, extTransmissionIDs); ok {
		cr.Extension = append(cr.Extension, swapTransmissionIDs(ext))
	}
	cr.Extension = append(cr.Extension, reviewerExtension(a.Items))

	var notes []crNote
	addNote := func(text string) int {
		for _, n := range notes {
			if n.Text == text {
				return n.Number
			}
		}
		n := len(notes) + 1
		notes = append(notes, crNote{Number: n, Type: "display", Text: text})
		return n
	}

	var firstApproved, lastEnd string
	provider := echo.authorizedProvider()
	itemOf := in.itemDecoder()
	items := append([]store.Item(nil), a.Items...)
	sort.Slice(items, func(i, j int) bool { return items[i].Sequence < items[j].Sequence })
	for _, it := range items {
		d := it.Decision
		ci := crItem{ItemSequence: it.Sequence}
		if raw := it.ItemJSON; raw != "" {
			if src, err := itemOf(it); err == nil {
				if tn, ok := fhir.FindExtension(src.Extension, extItemTraceNumber); ok {
					ci.Extension = append(ci.Extension, tn)
				}
				if p := requestedPeriod(src); p != nil {
					ci.Extension = append(ci.Extension, fhir.Extension{URL: extItemRequestedSvcDate, ValuePeriod: p})
				}
				// The provider's previous authorization number (REF-BB) comes back
				// as previousAuthorizationNumber. The diagnoses the item points at
				// are not repeated: PAS slices communicatedDiagnosis on
				// ClaimResponse.item, but the extension's context does not allow
				// it there, and the slice is optional.
				if e, ok := fhir.FindExtension(src.Extension, extAuthorizationNumber); ok {
					ci.Extension = append(ci.Extension, e)
				}
			}
		}
		ci.Extension = append(ci.Extension, stayExtensions(in.claim)...)
		authorized := d.Action == "approve" || d.Action == "modify"
		if authorized {
			issued := d.At.UTC().Format("2006-01-02")
			period := authPeriod(it, d, in.authDays)
			ci.Extension = append(ci.Extension,
				fhir.Extension{URL: extItemPreAuthIssueDate, ValueDate: &issued},
				fhir.Extension{URL: extItemPreAuthPeriod, ValuePeriod: period})
			if firstApproved == "" || period.Start < firstApproved {
				firstApproved = period.Start
			}
			if period.End > lastEnd {
				lastEnd = period.End
			}
		}
		if d.ReviewNumber != "" {
			ci.Extension = append(ci.Extension, fhir.Extension{URL: extAdminReferenceNumber, ValueString: fhir.Ptr(d.ReviewNumber)})
		}
		if provider != nil {
			ci.Extension = append(ci.Extension, authorizedProviderExtension(provider))
		}
		if authorized {
			src, _ := itemOf(it)
			ci.Extension = append(ci.Extension, authorizedDetail(it, src, d))
		}
		if d.Note != "" {
			ci.NoteNumber = []int{addNote(d.Note)}
		}
		ci.Adjudication = []adjudication{reviewAdjudication(d.ReviewAction, d.ReviewNumber, d.ReasonCodes)}
		cr.Item = append(cr.Item, ci)
		if d.Action == "modify" {
			src, _ := itemOf(it)
			ai := modifiedItem(it, src, d, in.authDays, provider, echo)
			ai.Extension = append(ai.Extension, stayExtensions(in.claim)...)
			cr.AddItem = append(cr.AddItem, ai)
		}
	}
	var infoRequests []bundleEntry
	for _, it := range items {
		if it.Decision.Action != "pend" {
			continue
		}
		for _, code := range it.Decision.RequestInfo {
			e := communicationRequest(a, it, code, echo, in.claim)
			cr.CommunicationRequest = append(cr.CommunicationRequest, fhir.Reference{Reference: e.FullURL})
			infoRequests = append(infoRequests, e)
		}
	}
	// The authorized provider is named on each item only, and the review
	// action per item only: PAS slices itemAuthorizedProvider on the
	// ClaimResponse root and reviewAction on its adjudication, but the
	// extensions' contexts (itemAuthorizedProvider: ClaimResponse.item;
	// reviewActionCode: item and addItem adjudication) do not allow them
	// there, and both slices are optional.
	if firstApproved != "" {
		cr.PreAuthRef = a.ID
		cr.PreAuthPeriod = &fhir.Period{Start: firstApproved, End: lastEnd}
	}
	if len(a.Items) > 0 {
		cr.Disposition = disposition(a)
	}

	if len(in.businessErrors) > 0 {
		cr.Outcome = "error"
		for _, be := range in.businessErrors {
			e := crError{Code: fhir.CodeableConcept{Coding: []fhir.Coding{{System: sysX12RejectReason, Code: be.Code}}}}
			if be.Note != "" {
				n := addNote(be.Note)
				el := []fhir.Extension{{URL: "processNote", ValuePositiveInt: &n}}
				if be.Element != "" {
					el = append(el, fhir.Extension{URL: "error", ValueString: fhir.Ptr(be.Element)})
				}
				e.Extension = append(e.Extension, fhir.Extension{URL: extErrorElement, Extension: el})
			}
			if be.Path != "" {
				e.Extension = append(e.Extension, fhir.Extension{URL: extErrorPath, ValueString: fhir.Ptr(be.Path)})
			}
			if be.Followup != "" {
				e.Extension = append(e.Extension, fhir.Extension{URL: extErrorFollowupAction,
					ValueCodeableConcept: &fhir.CodeableConcept{Coding: []fhir.Coding{{System: sysX12FollowUp, Code: be.Followup}}}})
			}
			cr.Error = append(cr.Error, e)
		}
	}
	cr.ProcessNote = notes

	bundleID := uuid.NewString()
	rb := responseBundle{
		ResourceType: "Bundle",
		ID:           bundleID,
		Meta:         &fhir.Meta{Profile: []string{ProfileResponseBundle}},
		Identifier:   in.bundleID,
		Type:         "collection",
		Timestamp:    in.now.UTC().Format(time.RFC3339),
	}
	if rb.Identifier == nil {
		rb.Identifier = &fhir.Identifier{System: "urn:ietf:rfc:3986", Value: "urn:uuid:" + bundleID}
	}
	rb.Entry = append(rb.Entry, bundleEntry{FullURL: "urn:uuid:" + uuid.NewString(), Resource: cr})
	for _, e := range echo.used() {
		rb.Entry = append(rb.Entry, bundleEntry{FullURL: e.FullURL, Resource: json.RawMessage(e.Resource)})
	}
	rb.Entry = append(rb.Entry, infoRequests...)
	return rb, cr.Outcome
}

// itemDecoder returns the decoded item of an item record, as
// json.Unmarshal of its JSON leaves it (with its error): decoded once per
// response, and not at all for an item of in.claim sent as it is stored
// (the Claim holds it decoded already).
func (in responseInput) itemDecoder() func(store.Item) (fhir.ClaimItem, error) {
	type decoded struct {
		item fhir.ClaimItem
		err  error
	}
	memo := map[string]decoded{}
	return func(it store.Item) (fhir.ClaimItem, error) {
		if d, ok := memo[it.ItemJSON]; ok {
			return d.item, d.err
		}
		var d decoded
		found := false
		if in.claim != nil && len(in.claimItems) == len(in.claim.Item) {
			for k, ci := range in.claim.Item {
				if ci.Sequence == it.Sequence && string(in.claimItems[k]) == it.ItemJSON {
					d.item, found = ci, true
					break
				}
			}
		}
		if !found {
			d.err = json.Unmarshal([]byte(it.ItemJSON), &d.item)
		}
		memo[it.ItemJSON] = d
		return d.item, d.err
	}
}

// responseBufs are the buffers response Bundles are assembled in.
var responseBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// writeBundle writes rb exactly as json.Marshal does, from its pieces,
// into a pooled buffer: the Bundle's own elements and each generated
// resource through json.Marshal, and each echoed resource (a
// json.RawMessage, stored compact at intake: compactJSON) copied as it is
// instead of being compacted and escaped again.
func writeBundle(rb responseBundle) ([]byte, error) {
	head := rb
	head.Entry = nil
	h, err := json.Marshal(head)
	if err != nil {
		return nil, err
	}
	const tail = `,"entry":null}`
	if !bytes.HasSuffix(h, []byte(tail)) {
		return nil, fmt.Errorf("pas: unexpected Bundle head %q", h)
	}
	buf := responseBufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			responseBufs.Put(buf)
		}
	}()
	buf.Write(h[:len(h)-len(tail)])
	buf.WriteString(`,"entry":[`)
	for i, e := range rb.Entry {
		if i > 0 {
			buf.WriteByte(',')
		}
		raw, echoed := e.Resource.(json.RawMessage)
		if !echoed || len(raw) == 0 {
			b, err := json.Marshal(e)
			if err != nil {
				return nil, err
			}
			buf.Write(b)
			continue
		}
		u, err := json.Marshal(e.FullURL)
		if err != nil {
			return nil, err
		}
		buf.WriteString(`{"fullUrl":`)
		buf.Write(u)
		buf.WriteString(`,"resource":`)
		if marshalled(raw) {
			buf.Write(raw)
		} else { // stored before echoed resources were kept compact
			b, err := json.Marshal(raw)
			if err != nil {
				return nil, err
			}
			buf.Write(b)
		}
		buf.WriteByte('}')
	}
	buf.WriteString("]}")
	return bytes.Clone(buf.Bytes()), nil
}

// claimRequestRef points ClaimResponse.request at the client's Claim. The
// Claim is not echoed (PAS allows that), so an absolute fullUrl is used
// where the client gave one, and the Claim's identifier otherwise. A
// Claim sent under a urn:uuid fullUrl has no URL a reference could hold:
// the reference is then marked with a data-absent-reason (not-applicable),
// the slice PAS provides for it.
func claimRequestRef(c *fhir.Claim, fullURL string) *fhir.Reference {
	ref := &fhir.Reference{Type: "Claim"}
	if strings.HasPrefix(fullURL, "http") {
		ref.Reference = fullURL
	} else {
		ref.Extension = []fhir.Extension{{URL: extDataAbsentReason, ValueCode: fhir.Ptr("not-applicable")}}
	}
	if len(c.Identifier) > 0 {
		id := c.Identifier[0]
		ref.Identifier = &fhir.Identifier{System: id.System, Value: id.Value}
	}
	return ref
}

func reviewAdjudication(code, number string, reasons []string) adjudication {
	ext := []fhir.Extension{{URL: extReviewActionCode, ValueCodeableConcept: &fhir.CodeableConcept{
		Coding: []fhir.Coding{{System: sysX12ReviewAction, Code: code, Display: reviewActionDisplay[code]}}}}}
	if number != "" {
		ext = append(ext, fhir.Extension{URL: "number", ValueString: fhir.Ptr(number)})
	}
	for _, r := range reasons {
		ext = append(ext, fhir.Extension{URL: "reasonCode", ValueCodeableConcept: &fhir.CodeableConcept{
			Coding: []fhir.Coding{{System: sysX12ReasonCode, Code: r}}}})
	}
	return adjudication{
		Extension: []fhir.Extension{{URL: extReviewAction, Extension: ext}},
		Category:  fhir.CodeableConcept{Coding: []fhir.Coding{{System: sysAdjudication, Code: "submitted"}}},
	}
}

// authPeriod is the period an approval covers: the requested service dates
// when given, else the issue date plus the configured validity.
func authPeriod(it store.Item, d store.Decision, days int) *fhir.Period {
	if d.AuthorizedFrom != "" {
		return &fhir.Period{Start: d.AuthorizedFrom, End: d.AuthorizedTo}
	}
	if it.ServiceFrom != "" && it.ServiceTo != "" && len(it.ServiceFrom) >= 10 && len(it.ServiceTo) >= 10 {
		return &fhir.Period{Start: it.ServiceFrom[:10], End: it.ServiceTo[:10]}
	}
	start := d.At.UTC()
	return &fhir.Period{Start: start.Format("2006-01-02"), End: start.AddDate(0, 0, days).Format("2006-01-02")}
}

func requestedPeriod(it fhir.ClaimItem) *fhir.Period {
	switch {
	case it.ServicedPeriod != nil:
		return it.ServicedPeriod
	case it.ServicedDate != nil:
		return &fhir.Period{Start: *it.ServicedDate, End: *it.ServicedDate}
	}
	return nil
}

// modifiedItem is the addItem that says what a modify decision authorizes
// (PAS spec-36/37): same service, the authorized quantity, certified A1.
func modifiedItem(it store.Item, src fhir.ClaimItem, d store.Decision, days int, provider *store.EchoEntry, echo *echoSet) crAddItem {
	period := authPeriod(it, d, days)
	issued := d.At.UTC().Format("2006-01-02")
	ai := crAddItem{
		ItemSequence:            []int{it.Sequence},
		ProductOrService:        src.ProductOrService,
		ServicedPeriod:          src.ServicedPeriod,
		ServicedDate:            src.ServicedDate,
		LocationCodeableConcept: src.LocationCodeableConcept,
		Adjudication:            []adjudication{reviewAdjudication("A1", d.ReviewNumber, nil)},
	}
	// What the provider sent about the item carries over to what is
	// authorized: its trace number and the order it requests. The request
	// and certification types, productOrServiceCodeEnd and
	// revenueUnitRateLimit do not: PAS slices them on addItem, but their
	// contexts do not allow ClaimResponse.addItem, and the slices are
	// optional.
	for _, url := range []string{extItemTraceNumber, extAuthorizationNumber, extEPSDTIndicator,
		extNursingHomeResidential, extNursingHomeLevelOfCare} {
		if e, ok := fhir.FindExtension(src.Extension, url); ok {
			ai.Extension = append(ai.Extension, e)
		}
	}
	if rev := nubcRevenue(src.Revenue); rev != nil {
		ai.Extension = append(ai.Extension, fhir.Extension{URL: extRevenueCode, ValueCodeableConcept: rev})
	}
	ai.Modifier, ai.UnitPrice = src.Modifier, src.UnitPrice
	if rs, ok := fhir.FindExtension(src.Extension, extRequestedService); ok && rs.ValueReference != nil {
		if ref := echo.ref(rs.ValueReference, ""); ref != nil && ref.Reference != "" {
			ai.Extension = append(ai.Extension, fhir.Extension{URL: extRequestedService, ValueReference: ref})
		}
	}
	if d.ReviewNumber != "" {
		ai.Extension = append(ai.Extension, fhir.Extension{URL: extAdminReferenceNumber, ValueString: fhir.Ptr(d.ReviewNumber)})
	}
	ai.Extension = append(ai.Extension,
		fhir.Extension{URL: extItemPreAuthIssueDate, ValueDate: &issued},
		fhir.Extension{URL: extItemPreAuthPeriod, ValuePeriod: period})
	if provider != nil {
		ai.Provider = []fhir.Reference{{Reference: provider.FullURL, Extension: []fhir.Extension{{
			URL: extAuthorizedProvType, ValueCodeableConcept: &fhir.CodeableConcept{
				Coding: []fhir.Coding{{System: sysX12EntityID, Code: "SJ", Display: "Service Provider"}}}}}}}
	}
	if ai.ProductOrService == nil {
		ai.ProductOrService = &fhir.CodeableConcept{Coding: []fhir.Coding{{System: it.System, Code: it.Code, Display: it.Display}}}
	}
	if d.AuthorizedFrom != "" {
		ai.ServicedDate, ai.ServicedPeriod = nil, &fhir.Period{Start: d.AuthorizedFrom, End: d.AuthorizedTo}
	}
	if q := authorizedQuantity(src, d); q != nil {
		ai.Quantity = q
	}
	return ai
}

// authorizedQuantity is what a decision authorizes: the modified quantity,
// or the requested one.
func authorizedQuantity(src fhir.ClaimItem, d store.Decision) *fhir.Quantity {
	if d.AuthorizedQuantity <= 0 {
		return src.Quantity
	}
	q := &fhir.Quantity{Value: fhir.Ptr(numberOf(d.AuthorizedQuantity))}
	if src.Quantity != nil {
		q.Unit, q.System, q.Code = src.Quantity.Unit, src.Quantity.System, src.Quantity.Code
	}
	return q
}

// authorizedDetail states what an approved or modified item authorizes
// (extension-itemAuthorizedDetail): the service code and quantity.
func authorizedDetail(it store.Item, src fhir.ClaimItem, d store.Decision) fhir.Extension {
	code := src.ProductOrService
	if code == nil {
		code = &fhir.CodeableConcept{Coding: []fhir.Coding{{System: it.System, Code: it.Code, Display: it.Display}}}
	}
	ext := fhir.Extension{URL: extItemAuthorizedDetail, Extension: []fhir.Extension{
		{URL: "productOrServiceCode", ValueCodeableConcept: code},
	}}
	if q := authorizedQuantity(src, d); q != nil && q.Value != nil {
		ext.Extension = append(ext.Extension, fhir.Extension{URL: "quantity", ValueQuantity: q})
	}
	return ext
}

// nubcRevenue is the part of a requested revenue code that
// extension-revenueCode may carry: its required value set
// (AHANUBCRevenueCodes) draws on the NUBC revenue code system only, so
// codings of other systems are left out, and nil is returned when none
// remains.
func nubcRevenue(cc *fhir.CodeableConcept) *fhir.CodeableConcept {
	if cc == nil {
		return nil
	}
	var keep []fhir.Coding
	for _, c := range cc.Coding {
		if c.System == sysNUBCRevenue {
			keep = append(keep, c)
		}
	}
	if len(keep) == 0 {
		return nil
	}
	return &fhir.CodeableConcept{Coding: keep, Text: cc.Text}
}

func numberOf(f float64) json.Number {
	return json.Number(strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.4f", f), "0"), "."))
}

func disposition(a *store.Authorization) string {
	counts := map[string]int{}
	for _, it := range a.Items {
		counts[it.Decision.Action]++
	}
	n := len(a.Items)
	switch {
	case counts["cancel"] == n:
		return "Cancelled"
	case counts["pend"] > 0:
		return "Pended for review"
	case counts["approve"] == n-counts["cancel"]:
		return "Certified in total"
	case counts["deny"] == n-counts["cancel"]:
		return "Not certified"
	}
	return "Partially certified"
}

func swapTransmissionIDs(ext fhir.Extension) fhir.Extension {
	swap := map[string]string{
		"applicationSenderCode":   "applicationReceiverCode",
		"applicationReceiverCode": "applicationSenderCode",
		"interchangeSenderID":     "interchangeReceiverID",
		"interchangeReceiverID":   "interchangeSenderID",
	}
	out := fhir.Extension{URL: ext.URL}
	for _, sub := range ext.Extension {
		if to, ok := swap[sub.URL]; ok {
			sub.URL = to
		}
		out.Extension = append(out.Extension, sub)
	}
	return out
}

// reviewerExtension says whether a person reviewed the request and, if so,
// who last decided (claimResponseReviewer; wasHumanReviewedFlag is 1..1).
func reviewerExtension(items []store.Item) fhir.Extension {
	var human *store.Decision
	for i := range items {
		d := &items[i].Decision
		if strings.HasPrefix(d.By, "reviewer:") && (human == nil || d.At.After(human.At)) {
			human = d
		}
	}
	ext := fhir.Extension{URL: extClaimResponseReviewer, Extension: []fhir.Extension{
		{URL: "wasHumanReviewedFlag", ValueBoolean: fhir.Ptr(human != nil)},
	}}
	if human != nil && human.ReviewerNPI != "" {
		ext.Extension = append(ext.Extension, fhir.Extension{URL: "reviewerNPI",
			ValueIdentifier: &fhir.Identifier{System: sysNPI, Value: human.ReviewerNPI}})
	}
	if human != nil {
		if sp := roleSpecialty(human.ReviewerRole); sp != nil {
			ext.Extension = append(ext.Extension, fhir.Extension{URL: "reviewerSpecialty", ValueCodeableConcept: sp})
		}
	}
	return ext
}

func authorizedProviderExtension(p *store.EchoEntry) fhir.Extension {
	return fhir.Extension{URL: extItemAuthorizedProv, Extension: []fhir.Extension{
		{URL: "provider", ValueReference: &fhir.Reference{Reference: p.FullURL}},
		{URL: extAuthorizedProvType, ValueCodeableConcept: &fhir.CodeableConcept{
			Coding: []fhir.Coding{{System: sysX12EntityID, Code: "SJ", Display: "Service Provider"}}}},
	}}
}

// echoSet tracks which request resources a response refers to, so each is
// included exactly once (spec-31) under its request fullUrl (spec-33).
type echoSet struct {
	all    []store.EchoEntry
	bundle *fhir.Bundle // the same entries, to resolve references between them
	byURL  map[string]int
	order  []int
	in     map[int]bool
}

func newEchoSet(all []store.EchoEntry) *echoSet {
	s := &echoSet{all: all, bundle: &fhir.Bundle{}, byURL: map[string]int{}, in: map[int]bool{}}
	for i, e := range all {
		s.byURL[e.FullURL] = i
		s.bundle.Entry = append(s.bundle.Entry, fhir.Entry{FullURL: e.FullURL, Type: e.Type})
	}
	return s
}

// ref returns a reference to the echoed copy of what r points to.
func (s *echoSet) ref(r *fhir.Reference, wantType string) *fhir.Reference {
	if r == nil {
		return nil
	}
	i, ok := s.find(r.Reference, wantType)
	if !ok {
		out := *r
		return &out
	}
	s.use(i)
	return &fhir.Reference{Reference: s.all[i].FullURL}
}

func (s *echoSet) find(ref, wantType string) (int, bool) {
	for _, e := range s.all {
		if e.FullURL == ref {
			return s.byURL[e.FullURL], true
		}
	}
	for i, e := range s.all {
		if strings.HasSuffix(e.FullURL, "/"+ref) && (wantType == "" || e.Type == wantType) {
			return i, true
		}
	}
	return 0, false
}

func (s *echoSet) use(i int) {
	if !s.in[i] {
		s.in[i] = true
		s.order = append(s.order, i)
	}
}

// authorizedProvider is the Practitioner or Organization that will render
// the services: the echoed resource marked as such at intake.
func (s *echoSet) authorizedProvider() *store.EchoEntry {
	for i, e := range s.all {
		if e.Type == "Practitioner" || e.Type == "Organization" {
			if e.Role == "provider" {
				s.use(i)
				return &s.all[i]
			}
		}
	}
	return nil
}

// used returns the echoed entries the response refers to, and, so that no
// reference in them dangles, the echoed entries they refer to in turn.
func (s *echoSet) used() []store.EchoEntry {
	for k := 0; k < len(s.order); k++ {
		e := s.all[s.order[k]]
		refs := e.Refs
		if !e.RefsKnown { // stored before intake kept them
			found, _ := fhir.References(json.RawMessage(e.Resource)) // stored at intake, valid JSON
			for _, ref := range found {
				refs = append(refs, ref.Value)
			}
		}
		for _, ref := range refs {
			if i := s.bundle.Resolve(ref, e.FullURL); i >= 0 {
				s.use(i)
			}
		}
	}
	out := make([]store.EchoEntry, 0, len(s.order))
	for _, i := range s.order {
		out = append(out, s.all[i])
	}
	return out
}

// communicationRequest asks the provider for documentation about a pended
// item (PAS "additional information"): one PAS CommunicationRequest per
// LOINC attachment code, with the item's sequence as service line number.
func communicationRequest(a *store.Authorization, it store.Item, loinc string, echo *echoSet, c *fhir.Claim) bundleEntry {
	type payload struct {
		ContentString string `json:"contentString"`
	}
	type commRequest struct {
		ResourceType string                 `json:"resourceType"`
		ID           string                 `json:"id"`
		Meta         *fhir.Meta             `json:"meta"`
		Extension    []fhir.Extension       `json:"extension"`
		Identifier   []fhir.Identifier      `json:"identifier"`
		Status       string                 `json:"status"`
		Category     []fhir.CodeableConcept `json:"category"`
		Payload      []payload              `json:"payload"`
		Requester    *fhir.Reference        `json:"requester,omitempty"`
		Recipient    []fhir.Reference       `json:"recipient,omitempty"`
		Sender       *fhir.Reference        `json:"sender,omitempty"`
	}
	id := fmt.Sprintf("%s-%d-%s", a.ID, it.Sequence, strings.ReplaceAll(loinc, ".", ""))
	r := commRequest{
		ResourceType: "CommunicationRequest",
		ID:           id,
		Meta:         &fhir.Meta{Profile: []string{ProfileCommunicationRequest}},
		Extension:    []fhir.Extension{{URL: extServiceLineNumber, ValuePositiveInt: fhir.Ptr(it.Sequence)}},
		Identifier:   []fhir.Identifier{{System: "urn:priora:information-request", Value: id}},
		Status:       "active",
		Category: []fhir.CodeableConcept{{Coding: []fhir.Coding{{
			System: sysX12ReportType, Code: "M1", Display: "Medical Record Attachment"}}}},
		Payload:   []payload{{ContentString: loinc}},
		Requester: echo.ref(c.Insurer, "Organization"),
		Sender:    echo.ref(c.Provider, ""),
	}
	if p := echo.authorizedProvider(); p != nil {
		r.Recipient = []fhir.Reference{{Reference: p.FullURL}}
	}
	return bundleEntry{FullURL: "urn:uuid:" + uuid.NewString(), Resource: r}
}

// stayExtensions carry the admission and discharge dates the provider gave
// as supportingInfo (PASTempCodes admissionDates / dischargeDates) onto an
// item of the response.
func stayExtensions(c *fhir.Claim) []fhir.Extension {
	var out []fhir.Extension
	for _, si := range c.SupportingInfo {
		cd, ok := si.Category.Code(sysPASTempCodes)
		if !ok {
			continue
		}
		switch cd.Code {
		case "admissionDates":
			if p := si.TimingPeriod; p != nil {
				out = append(out, fhir.Extension{URL: extAdmissionDates, ValuePeriod: p})
			} else if si.TimingDate != nil {
				out = append(out, fhir.Extension{URL: extAdmissionDates, ValuePeriod: &fhir.Period{Start: *si.TimingDate}})
			}
		case "dischargeDates":
			if si.TimingDate != nil {
				out = append(out, fhir.Extension{URL: extDischargeDate, ValueDate: si.TimingDate})
			} else if p := si.TimingPeriod; p != nil && p.End != "" {
				out = append(out, fhir.Extension{URL: extDischargeDate, ValueDate: fhir.Ptr(p.End[:min(10, len(p.End))])})
			}
		}
	}
	return out
}

// compactJSON is raw as json.Marshal writes a json.RawMessage (compact,
// with <, >, & and U+2028/U+2029 escaped), which marshalled recognizes;
// raw itself if it is not JSON.
func compactJSON(raw []byte) string {
	if b, err := json.Marshal(json.RawMessage(raw)); err == nil {
		return string(b)
	}
	return string(raw)
}

// marshalled reports whether JSON raw is already as json.Marshal writes
// it (no white space between tokens, nothing HTML-escaping would change),
// so that it can be copied into a response as it is.
func marshalled(raw []byte) bool {
	inString, escaped := false, false
	for i, c := range raw {
		switch {
		case c == '<' || c == '>' || c == '&':
			return false
		case c == 0xE2 && i+2 < len(raw) && raw[i+1] == 0x80 && (raw[i+2] == 0xA8 || raw[i+2] == 0xA9):
			return false
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		}
	}
	return len(raw) > 0
}
