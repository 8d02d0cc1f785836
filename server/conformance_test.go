package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/priora/priora/conformance/check"
	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/profiles"
)

// trimVisits are rules that modify a request for more than one visit to
// one visit.
const trimVisits = `
version: 1
defaults: {unknownCode: pend, authorizationDays: 30}
rules:
  - id: trim-visits
    match: {codes: [{system: "https://codesystem.x12.org/005010/1365", codes: ["3"]}], quantity: {min: 2}}
    decision: {action: modify, authorizeQuantity: 1, reasonCode: "0P", note: "One visit authorized.", reason: limit}
`

// returnBundles are the `return` resources of an $inquire answer.
func returnBundles(t *testing.T, body []byte) [][]byte {
	t.Helper()
	var p struct {
		Parameter []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"parameter"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, part := range p.Parameter {
		out = append(out, part.Resource)
	}
	return out
}

// TestX12SystemsMatchBindings: every X12 coding in the responses Priora
// builds (rule decisions, desk decisions and what $inquire returns for
// them) uses the system of the value set its element is bound to: a
// denial's reason code is https://codesystem.x12.org/external/886 because
// X12278ReviewDecisionReasonCode includes that system only.
func TestX12SystemsMatchBindings(t *testing.T) {
	rules := trimVisits + `
  - id: deny-dme
    match: {codes: [{system: "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", codes: ["E0250"]}]}
    decision: {action: deny, reasonCode: "0U", note: "Not a covered benefit.", reason: excluded}
  - id: knee
    match: {codes: [{system: "http://www.ama-assn.org/go/cpt", codes: ["27447"]}]}
    decision: {action: pend, reason: review}
`
	e := testenv.Start(t, testenv.WithRules(rules))
	v := testenv.Validator(t)
	check := func(what string, bundle []byte, inquiry bool) {
		t.Helper()
		res := v.ValidatePASResponse(bundle)
		if inquiry {
			res = v.ValidatePASInquiryResponse(bundle)
		}
		testenv.RequireValid(t, what, res)
		testenv.RequireX12Bound(t, what, bundle, res)
		requireNoIGDefects(t, what, res)
		if len(testenv.X12Codings(t, bundle)) == 0 {
			t.Errorf("%s carries no X12 coding: the check checked nothing", what)
		}
	}

	// Rule decisions: a modification and a denial with reason codes.
	ruled := edit(t, testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json"), func(b map[string]any) {
		items := claim(b)["item"].([]any)
		items[1].(map[string]any)["quantity"] = map[string]any{"value": 4.0, "unit": "visit"}
		items[0].(map[string]any)["productOrService"] = map[string]any{"coding": []any{map[string]any{"system": "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "code": "E0250"}}}
	})
	r := e.Post(submitPath, ruled)
	if r.Status != http.StatusOK {
		t.Fatalf("submit: %d %s", r.Status, r.Body)
	}
	check("rule decision", r.Body, false)
	_, items := checkPASResponse(t, r.Body)
	if len(items[1].Reasons) == 0 {
		t.Errorf("denied item carries no reason code")
	}

	// Desk decisions: a denial and a modification with reason codes.
	if r := e.Post(submitPath, pendedRequest(t)); r.Status != http.StatusOK {
		t.Fatalf("submit: %d %s", r.Status, r.Body)
	}
	var tasks taskList
	for _, tk := range queue(t, e, "").Tasks {
		tasks.Tasks = append(tasks.Tasks, tk)
	}
	if len(tasks.Tasks) != 1 {
		t.Fatalf("open tasks = %+v, want one", tasks)
	}
	decision := `{"reviewer": {"npi": "1234567893", "name": "Dr. Rev", "role": "physician"},
		"items": [{"sequence": 1, "action": "modify", "quantity": 1, "reasonCode": "0P", "note": "One knee."},
		          {"sequence": 2, "action": "deny", "reasonCode": "0U", "note": "Conservative therapy not documented."}]}`
	d := e.Post("/review/tasks/"+tasks.Tasks[0].ID+"/decision", []byte(decision), "Content-Type", "application/json")
	if d.Status != http.StatusOK {
		t.Fatalf("decision: %d %s", d.Status, d.Body)
	}
	check("desk decision", d.Body, false)

	// What $inquire returns for them.
	q := e.Post(inquirePath, testenv.Fixture(t, "pas/kit/must_support_pa_inquire_request_payload.1.json"))
	if q.Status != http.StatusOK {
		t.Fatalf("inquire: %d %s", q.Status, q.Body)
	}
	for _, b := range returnBundles(t, q.Body) {
		check("$inquire return", b, true)
	}
}

// requireNoIGDefects fails the test for every finding of res that the
// validator accepts only as a known IG defect or a tolerance in what
// Priora writes itself (the ClaimResponse, entry 0): Priora's own content
// needs neither. Echoed request resources are the client's, unchanged.
func requireNoIGDefects(t *testing.T, what string, res profiles.Result) {
	t.Helper()
	for _, is := range res.Issues {
		if !strings.HasPrefix(is.Expression, "Bundle.entry[0]") {
			continue
		}
		if strings.Contains(is.Diagnostics, "known IG defect") || strings.Contains(is.Diagnostics, "; tolerated: ") {
			t.Errorf("%s: %s: %s", what, is.Expression, is.Diagnostics)
		}
	}
}

// TestResponsesResolveEveryReference: a modified item's addItem points at
// the ServiceRequest it modifies, which the response echoes; what that
// ServiceRequest refers to (here its requester, a PractitionerRole given
// as urn:uuid, and that role's Practitioner) is echoed too, so no
// reference in the response dangles. The $inquire answer for it keeps
// communicatedDiagnosis within 0..1 per item although the item points at
// two diagnoses.
func TestResponsesResolveEveryReference(t *testing.T) {
	e := testenv.Start(t, testenv.WithRules(trimVisits))
	const role = "urn:uuid:6a3f1f9e-2c7b-4c1e-9d1e-0f6f2b7a9c11"
	req := edit(t, testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json"), func(b map[string]any) {
		for _, en := range b["entry"].([]any) {
			en := en.(map[string]any)
			res := en["resource"].(map[string]any)
			switch res["resourceType"] {
			case "PractitionerRole":
				en["fullUrl"] = role
			case "ServiceRequest":
				res["requester"] = map[string]any{"reference": role}
			}
		}
		c := claim(b)
		for _, ct := range c["careTeam"].([]any) {
			ct.(map[string]any)["provider"] = map[string]any{"reference": role}
		}
		dx := c["diagnosis"].([]any)
		second := cloneJSON(dx[0]).(map[string]any)
		second["sequence"] = 2.0
		second["diagnosisCodeableConcept"] = map[string]any{"coding": []any{map[string]any{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M54.50"}}}
		c["diagnosis"] = append(dx, second)
		items := c["item"].([]any)
		for _, it := range items {
			it.(map[string]any)["diagnosisSequence"] = []any{1.0, 2.0}
		}
		items[1].(map[string]any)["quantity"] = map[string]any{"value": 4.0, "unit": "visit"}
	})
	r := e.Post(submitPath, req)
	if r.Status != http.StatusOK {
		t.Fatalf("submit: %d %s", r.Status, r.Body)
	}
	v := testenv.Validator(t)
	testenv.RequireValid(t, "modify response", v.ValidatePASResponse(r.Body))
	b := decodeBundle(t, r.Body)
	urls := map[string]bool{}
	for _, en := range b.Entry {
		urls[en.FullURL] = true
	}
	if !urls[role] || !urls["http://davinci-pas.org/fhir/ServiceRequest/ReferralRequestExample"] {
		t.Errorf("response entries %v lack the modified order or its requester %s", urls, role)
	}
	for i, en := range b.Entry {
		for _, ref := range check.ReferencesIn(en.Resource, fmt.Sprintf("Bundle.entry[%d].resource", i)) {
			if strings.HasPrefix(ref.Value, "urn:uuid:") && !urls[ref.Value] {
				t.Errorf("%s = %s is not in the Bundle", ref.Path, ref.Value)
			}
		}
	}

	q := e.Post(inquirePath, testenv.Fixture(t, "pas/kit/must_support_pa_inquire_request_payload.1.json"))
	if q.Status != http.StatusOK {
		t.Fatalf("inquire: %d %s", q.Status, q.Body)
	}
	returns := returnBundles(t, q.Body)
	if len(returns) == 0 {
		t.Fatalf("inquiry returned nothing: %s", q.Body)
	}
	for _, rb := range returns {
		testenv.RequireValid(t, "$inquire return", v.ValidatePASInquiryResponse(rb))
		for i, it := range decodeBundle(t, rb).Entry[0].Resource["item"].([]any) {
			n := len(check.Extensions(it.(map[string]any), "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-communicatedDiagnosis"))
			if n > 1 {
				t.Errorf("inquiry item[%d] carries %d communicatedDiagnosis extensions, profile allows 0..1", i, n)
			}
		}
	}
}

// TestServedConformanceResourcesValidate: the CapabilityStatement, the
// PAS OperationDefinitions (corrected for opd-3, and saying so) and the
// SubscriptionTopic validate against their base definitions, and the
// CapabilityStatement lists what request validation tolerates.
func TestServedConformanceResourcesValidate(t *testing.T) {
	e := testenv.Start(t)
	v := testenv.Validator(t)
	for _, path := range []string{"/fhir/metadata", "/fhir/OperationDefinition/Claim-submit", "/fhir/OperationDefinition/Claim-inquiry", "/fhir/SubscriptionTopic/PASSubscriptionTopic"} {
		r := e.Get(path)
		if r.Status != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, r.Status, r.Body)
			continue
		}
		testenv.RequireValid(t, path, v.Validate(r.Body))
		if strings.Contains(path, "OperationDefinition") {
			var od struct {
				Description string `json:"description"`
				Parameter   []struct {
					Name, Type, Documentation string
					TargetProfile             []string `json:"targetProfile"`
				} `json:"parameter"`
			}
			if err := json.Unmarshal(r.Body, &od); err != nil {
				t.Fatal(err)
			}
			for _, p := range od.Parameter {
				if p.Type == "Bundle" && (len(p.TargetProfile) > 0 || !strings.Contains(p.Documentation, "Conforms to http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-pas-")) {
					t.Errorf("%s parameter %s: targetProfile %v, documentation %q; want the profile in the documentation", path, p.Name, p.TargetProfile, p.Documentation)
				}
			}
			if !strings.Contains(od.Description, "Corrected by Priora") || !strings.Contains(od.Description, "opd-3") {
				t.Errorf("%s description does not say what was corrected: %q", path, od.Description)
			}
		}
	}
	doc := string(e.Get("/fhir/metadata").Body)
	for _, tol := range profiles.Tolerances() {
		if !strings.Contains(doc, tol.Path) {
			t.Errorf("CapabilityStatement documentation does not list the tolerance at %s", tol.Path)
		}
	}
}

// TestStrictToleratesNothing: the public kit's request (a DocumentReference
// with an attachment url instead of data) is accepted with warnings, and
// refused with PRIORA_STRICT=true, whose CapabilityStatement says nothing
// is tolerated.
func TestStrictToleratesNothing(t *testing.T) {
	kit := testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json")
	if r := testenv.Start(t).Post(submitPath, kit); r.Status != http.StatusOK {
		t.Fatalf("tolerant: %d %s", r.Status, r.Body)
	}
	strict := testenv.Start(t, testenv.WithConfig(func(c *app.Config) { c.Strict = true }))
	r := strict.Post(submitPath, kit)
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "attachment") {
		t.Errorf("strict: %d %s; want 400 naming the attachment", r.Status, r.Body)
	}
	if doc := string(strict.Get("/fhir/metadata").Body); !strings.Contains(doc, "tolerates nothing") {
		t.Errorf("strict CapabilityStatement does not say nothing is tolerated")
	}
}

// TestRequestWithoutURLCarriesDataAbsentReason: a Claim sent under a
// urn:uuid fullUrl has no URL ClaimResponse.request could hold; the
// response (and what $inquire returns for it) says so with the
// data-absent-reason PAS provides, and still names the Claim's identifier.
func TestRequestWithoutURLCarriesDataAbsentReason(t *testing.T) {
	e := testenv.Start(t)
	req := edit(t, testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json"), func(b map[string]any) {
		b["entry"].([]any)[0].(map[string]any)["fullUrl"] = "urn:uuid:0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
	})
	r := e.Post(submitPath, req)
	if r.Status != http.StatusOK {
		t.Fatalf("submit: %d %s", r.Status, r.Body)
	}
	checkRequest := func(what string, body []byte) {
		t.Helper()
		ref, _ := decodeBundle(t, body).Entry[0].Resource["request"].(map[string]any)
		x := check.Extensions(ref, "data-absent-reason")
		if ref["reference"] != nil || ref["identifier"] == nil || len(x) != 1 ||
			x[0]["url"] != "http://hl7.org/fhir/StructureDefinition/data-absent-reason" || x[0]["valueCode"] != "not-applicable" {
			t.Errorf("%s: ClaimResponse.request = %v, want the identifier and a data-absent-reason", what, ref)
		}
	}
	checkRequest("$submit response", r.Body)
	q := e.Post(inquirePath, testenv.Fixture(t, "pas/kit/must_support_pa_inquire_request_payload.1.json"))
	returns := returnBundles(t, q.Body)
	if q.Status != http.StatusOK || len(returns) == 0 {
		t.Fatalf("inquire: %d %s", q.Status, q.Body)
	}
	checkRequest("$inquire return", returns[0])
}

// TestCRDValidationChecksClaimsAndAnsweredVersion: under
// PRIORA_CRD_VALIDATION=enforce a ServiceRequest without subject is
// unprocessable whether or not it claims a US Core profile, and the rule
// cited is the one of the CRD version the call is answered as (2.2 by
// default, 2.0 when the call asks for it).
func TestCRDValidationChecksClaimsAndAnsweredVersion(t *testing.T) {
	e := testenv.Start(t, testenv.WithConfig(func(c *app.Config) { c.CRDValidation = app.ValidationEnforce }))
	body := func(claim, version string) []byte {
		return edit(t, testenv.Fixture(t, "crd/ig/CRDServiceRequest.json"), func(b map[string]any) {
			for _, o := range b["context"].(map[string]any)["draftOrders"].(map[string]any)["entry"].([]any) {
				r := o.(map[string]any)["resource"].(map[string]any)
				if r["resourceType"] == "ServiceRequest" {
					delete(r, "subject")
					if claim != "" {
						r["meta"] = map[string]any{"profile": []any{claim}}
					}
				}
			}
			if version != "" {
				b["extension"] = map[string]any{"davinci-crd.requestedVersion": version}
			}
		})
	}
	for _, tt := range []struct {
		name, claim, version, wantProfile string
	}{
		{"no claim, answered as 2.2", "", "", "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/profile-servicerequest|2.2"},
		{"US Core claim, answered as 2.2", "http://hl7.org/fhir/us/core/StructureDefinition/us-core-servicerequest", "", "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/profile-servicerequest|2.2"},
		{"no claim, answered as 2.0", "", "2.0", "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/profile-servicerequest|2.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.Post("/cds-services/order-sign-crd", body(tt.claim, tt.version), "Content-Type", "application/json")
			if r.Status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422: %.400s", r.Status, r.Body)
			}
			if !strings.Contains(string(r.Body), "ServiceRequest.subject") || !strings.Contains(string(r.Body), tt.wantProfile) {
				t.Errorf("422 does not cite subject under %s: %s", tt.wantProfile, r.Body)
			}
		})
	}
}
