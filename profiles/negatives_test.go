package profiles

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
)

// mutate decodes doc, applies f and re-encodes it.
func mutate(t *testing.T, doc []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// at walks a dotted path of keys and array indexes ("entry.0.resource").
func at(m any, path string) any {
	cur := m
	if path == "" {
		return cur
	}
	for _, p := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			i, _ := strconv.Atoi(p)
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

func obj(m any, path string) map[string]any { return at(m, path).(map[string]any) }

func set(path string, v any) func(map[string]any) {
	return func(m map[string]any) {
		i := strings.LastIndexByte(path, '.')
		parent, key := "", path
		if i >= 0 {
			parent, key = path[:i], path[i+1:]
		}
		switch p := at(m, parent).(type) {
		case map[string]any:
			p[key] = v
		case []any:
			n, _ := strconv.Atoi(key)
			p[n] = v
		}
	}
}

func del(path string) func(map[string]any) {
	return func(m map[string]any) {
		i := strings.LastIndexByte(path, '.')
		parent, key := "", path
		if i >= 0 {
			parent, key = path[:i], path[i+1:]
		}
		if p, ok := at(m, parent).(map[string]any); ok {
			delete(p, key)
			return
		}
		// Remove an array element.
		j := strings.LastIndexByte(parent, '.')
		gp, pk := parent[:max(j, 0)], parent[j+1:]
		arr := at(m, parent).([]any)
		n, _ := strconv.Atoi(key)
		set(gp+"."+pk, append(append([]any{}, arr[:n]...), arr[n+1:]...))(m)
	}
}

func appendTo(path string, v any) func(map[string]any) {
	return func(m map[string]any) {
		arr, _ := at(m, path).([]any)
		set(path, append(arr, v))(m)
	}
}

func both(fs ...func(map[string]any)) func(map[string]any) {
	return func(m map[string]any) {
		for _, f := range fs {
			f(m)
		}
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	claim    = "entry.0.resource"
	coverage = "entry.3.resource"
	patient  = "entry.4.resource"
	service  = "entry.5.resource"
	practnr  = "entry.7.resource"
	insurer  = "entry.2.resource"
)

// TestNegatives mutates valid IG examples and checks that each mutation
// produces the expected issue at the expected location.
func TestNegatives(t *testing.T) {
	r := registry(t)
	v := r.NewValidator(Options{})
	request := readTestdata(t, "pas-2.2.1/Bundle-ReferralAuthorizationBundleExample.json")
	response := readTestdata(t, "pas-2.2.1/Bundle-ReferralAuthorizationResponseBundleExample.json")
	crdCoverage := readTestdata(t, "crd-2.0.1/Coverage-example.json")
	hook := readTestdata(t, "crd-hooks/order_sign_request_bodies_1_order-sign.json")

	pasExt := "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"
	cases := []struct {
		name     string
		doc      []byte
		mut      func(map[string]any)
		validate func([]byte) Result
		severity string // default error
		expr     string
		fragment string
	}{
		// Cardinality.
		{"drop Claim.identifier", request, del(claim + ".identifier"), nil, "", "Bundle.entry[0].resource", "Claim.identifier: minimum required = 1, but only found 0"},
		{"drop Bundle.identifier", request, del("identifier"), nil, "", "Bundle", "Bundle.identifier: minimum required = 1, but only found 0"},
		{"drop Bundle.timestamp", request, del("timestamp"), nil, "", "Bundle", "Bundle.timestamp: minimum required = 1"},
		{"drop Claim.item", request, del(claim + ".item"), nil, "", "Bundle.entry[0].resource", "Claim.item: minimum required = 1"},
		{"drop Claim.insurance", request, del(claim + ".insurance"), nil, "", "Bundle.entry[0].resource", "Claim.insurance: minimum required = 1"},
		{"drop entry fullUrl", request, del("entry.1.fullUrl"), nil, "", "Bundle.entry[1]", "Bundle.entry.fullUrl: minimum required = 1"},
		{"drop ServiceRequest.intent", request, del(service + ".intent"), nil, "", "Bundle.entry[5].resource", "ServiceRequest.intent: minimum required = 1"},
		{"drop Patient.name (US Core)", request, del(patient + ".name"), nil, "", "Bundle.entry[4].resource", "Patient.name: minimum required = 1"},
		{"drop Insurer name", request, del(insurer + ".name"), nil, "", "Bundle.entry[2].resource", "Organization.name: minimum required = 1"},
		{"entry.request is prohibited", request, set("entry.1.request", map[string]any{"method": "POST", "url": "Organization"}), nil, "", "Bundle.entry[1].request", "Bundle.entry.request: max allowed = 0"},
		{"three Claim entries", request, func(m map[string]any) {
			e := obj(m, "entry.0")
			for i := 0; i < 2; i++ {
				c := map[string]any{}
				b, _ := json.Marshal(e)
				json.Unmarshal(b, &c)
				c["fullUrl"] = "urn:uuid:0000000" + strconv.Itoa(i) + "-0000-4000-8000-000000000000"
				appendTo("entry", c)(m)
			}
		}, nil, "", "Bundle.entry[11]", "Bundle.entry:Claim: max allowed = 2, but found 3"},
		{"two X12 relationship codings", request, appendTo(coverage+".relationship.coding", map[string]any{"system": "https://codesystem.x12.org/005010/1069", "code": "01"}), nil, "", "Bundle.entry[3].resource.relationship.coding[2]", "Coverage.relationship.coding:X12Code: max allowed = 1, but found 2"},
		{"complex extension missing a required part", request, del(claim + ".supportingInfo.0.extension.0.extension.0"), nil, "", "Bundle.entry[0].resource.supportingInfo[0].extension[0]", "Extension.extension:reportTypeCode: minimum required = 1"},
		// Fixed and pattern values.
		{"wrong Bundle.type", request, set("type", "transaction"), nil, "", "Bundle.type", "Value is 'transaction' but must be 'collection'"},
		{"wrong Claim.use", request, set(claim+".use", "claim"), nil, "", "Bundle.entry[0].resource.use", "Value is 'claim' but must be 'preauthorization'"},
		{"wrong Claim.status", request, set(claim+".status", "draft"), nil, "", "Bundle.entry[0].resource.status", "Value is 'draft' but must be 'active'"},
		// Bindings.
		{"bad code under required binding (status)", request, set(claim+".status", "bogus"), nil, "", "Bundle.entry[0].resource.status", "The code bogus is not in the value set http://hl7.org/fhir/ValueSet/fm-status|4.0.1 (required binding)"},
		{"bad gender", request, set(patient+".gender", "mail"), nil, "", "Bundle.entry[4].resource.gender", "The code mail is not in the value set http://hl7.org/fhir/ValueSet/administrative-gender"},
		{"bad Coverage.status", request, set(coverage+".status", "current"), nil, "", "Bundle.entry[3].resource.status", "not in the value set http://hl7.org/fhir/ValueSet/fm-status"},
		{"bad ServiceRequest.status", request, set(service+".status", "ongoing"), nil, "", "Bundle.entry[5].resource.status", "not in the value set http://hl7.org/fhir/ValueSet/request-status"},
		{"X12 code is only information", request, set(claim+".item.0.category.coding.0.code", "ZZZ"), nil, SeverityInformation, "Bundle.entry[0].resource.item[0].category", "Code not validated: the value set https://valueset.x12.org/x217/005010/request/2000F/UM/1/03/00/1365 is licensed"},
		{"reason code from the 005010 system", response, appendTo(claim+".item.0.adjudication.0.extension.0.extension", map[string]any{"url": "reasonCode", "valueCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": "https://codesystem.x12.org/005010/886", "code": "ABC"}}}}), func(b []byte) Result { return v.ValidatePASResponse(b) }, "", "Bundle.entry[0].resource.item[0].adjudication[0].extension[0].extension[2].value.ofType(CodeableConcept)", "The code https://codesystem.x12.org/005010/886#ABC is not in the value set http://hl7.org/fhir/us/davinci-pas/ValueSet/X12278ReviewDecisionReasonCode"},
		{"X12 code of another data element", request, set(claim+".item.0.category.coding.0.system", "https://codesystem.x12.org/005010/1322"), nil, SeverityWarning, "Bundle.entry[0].resource.item[0].category.coding[0]", "the value set holds codes of X12 data element 1365, the code system is element 1322"},
		// Primitives and JSON shape.
		{"unknown element", request, set(claim+".foo", "bar"), nil, "", "Bundle.entry[0].resource.foo", "Unrecognized element 'foo'"},
		{"bad dateTime", request, set(claim+".created", "yesterday"), nil, "", "Bundle.entry[0].resource.created", "The value 'yesterday' is not a valid dateTime"},
		{"bad date", request, set(patient+".birthDate", "2020-13-01"), nil, "", "Bundle.entry[4].resource.birthDate", "The value '2020-13-01' is not a valid date"},
		{"empty string", request, set(claim+".identifier.0.value", ""), nil, "", "Bundle.entry[0].resource.identifier[0].value", "@value cannot be empty"},
		{"string for a number", request, set(claim+".careTeam.0.sequence", "1"), nil, "", "Bundle.entry[0].resource.careTeam[0].sequence", "the primitive value must be a number"},
		{"positiveInt zero", request, set(claim+".item.0.sequence", 0), nil, "", "Bundle.entry[0].resource.item[0].sequence", "is not a valid positiveInt"},
		{"array for a singleton", request, set(claim+".patient", []any{map[string]any{"reference": "Patient/SubscriberExample"}}), nil, "", "Bundle.entry[0].resource.patient[0]", "does not repeat, so it must not be a JSON array"},
		{"object for an array", request, set(claim+".insurance", map[string]any{"sequence": 1, "focal": true, "coverage": map[string]any{"reference": "Coverage/InsuranceExample"}}), nil, "", "Bundle.entry[0].resource.insurance", "repeats, so it must be a JSON array"},
		{"choice type not allowed", request, both(del(claim+".diagnosis.0.diagnosisCodeableConcept"), set(claim+".diagnosis.0.diagnosisString", "pain")), nil, "", "Bundle.entry[0].resource.diagnosis[0].diagnosis.ofType(String)", "The type 'String' is not allowed for Claim.diagnosis.diagnosis[x]"},
		{"empty object", request, set(claim+".priority", map[string]any{}), nil, "", "Bundle.entry[0].resource.priority", "objects must not be empty"},
		// Extensions.
		{"unknown modifier extension", request, set(claim+".modifierExtension", []any{map[string]any{"url": "http://example.org/dont-ignore-me", "valueBoolean": true}}), nil, "", "Bundle.entry[0].resource.modifierExtension[0]", "Unknown modifier extension 'http://example.org/dont-ignore-me'"},
		{"unknown extension is a warning", request, appendTo(claim+".extension", map[string]any{"url": "http://example.org/nice-to-know", "valueString": "x"}), nil, SeverityWarning, "Bundle.entry[0].resource.extension[2]", "Unknown extension 'http://example.org/nice-to-know'"},
		{"extension with value and extensions", request, set(claim+".extension.1.valueString", "x"), nil, "", "Bundle.entry[0].resource.extension[1]", "ext-1"},
		{"extension without url", request, appendTo(claim+".item.0.extension", map[string]any{"valueString": "x"}), nil, "", "Bundle.entry[0].resource.item[0].extension[10]", "An extension must have a url"},
		{"extension in the wrong context", request, appendTo(patient+".extension", map[string]any{"url": pasExt + "extension-levelOfServiceCode", "valueCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": "https://codesystem.x12.org/005010/1338", "code": "U"}}}}), nil, "", "Bundle.entry[4].resource.extension[1]", "extension-levelOfServiceCode is not allowed to be used at this point (Patient)"},
		{"known IG context defect is a warning", request, appendTo(claim+".extension", map[string]any{"url": pasExt + "extension-authorizationNumber", "valueString": "AUTH1"}), nil, SeverityWarning, "Bundle.entry[0].resource.extension[2]", "accepted as a known IG defect"},
		{"modifier extension used as extension", request, appendTo(claim+".item.0.extension", map[string]any{"url": pasExt + "modifierextension-infoCancelled", "valueBoolean": true}), nil, "", "Bundle.entry[0].resource.item[0].extension[10]", "is a modifier extension, so it must be used in modifierExtension"},
		{"extension value of the wrong type", request, set(claim+".extension.0", map[string]any{"url": pasExt + "extension-levelOfServiceCode", "valueString": "U"}), nil, "", "Bundle.entry[0].resource.extension[0].value.ofType(String)", "The type 'String' is not allowed for Extension.value[x]"},
		// References.
		{"unresolved urn:uuid reference", request, set(claim+".patient.reference", "urn:uuid:8f7d2c3e-0000-4000-8000-000000000001"), nil, "", "Bundle.entry[0].resource.patient", "could not be resolved in the Bundle"},
		{"wrong target type", request, set(claim+".patient.reference", "Organization/InsurerExample"), nil, "", "Bundle.entry[0].resource.patient", "points to a Organization, which is not a valid target (allowed: Patient)"},
		{"wrong insurer target type", request, set(claim+".insurer.reference", "Patient/SubscriberExample"), nil, "", "Bundle.entry[0].resource.insurer", "points to a Patient, which is not a valid target"},
		{"missing contained resource", request, set(claim+".provider.reference", "#nope"), nil, "", "Bundle.entry[0].resource.provider", "The contained resource '#nope' was not found"},
		{"target does not conform to targetProfile", request, del(patient + ".gender"), nil, "", "Bundle.entry[0].resource.patient", "does not conform to the target profile http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-beneficiary"},
		// Invariants.
		{"duplicate fullUrl (bdl-7)", request, set("entry.2.fullUrl", "http://example.org/fhir/Organization/UMOExample"), nil, "", "Bundle", "bdl-7"},
		{"Claim not first", request, func(m map[string]any) {
			e := m["entry"].([]any)
			e[0], e[1] = e[1], e[0]
		}, nil, "", "Bundle", "ClaimFirst"},
		{"NPI not 10 digits (us-core-16)", request, set(practnr+".identifier.0.value", "12345"), nil, "", "Bundle.entry[7].resource.identifier[0]", "us-core-16"},
		{"Coverage without member id (us-core-15)", request, both(del(coverage+".subscriberId"), del(coverage+".identifier")), nil, "", "Bundle.entry[3].resource", "us-core-15"},
		{"non-self relationship without subscriber (self-beneficiary)", request, set(coverage+".relationship", map[string]any{"coding": []any{map[string]any{"system": "https://codesystem.x12.org/005010/1069", "code": "01"}}}), nil, "", "Bundle.entry[3].resource", "self-beneficiary"},
		{"period end before start (per-1)", request, set(claim+".item.0.servicedPeriod", map[string]any{"start": "2021-05-10", "end": "2021-05-01"}), nil, "", "Bundle.entry[0].resource.item[0].serviced.ofType(Period)", "per-1"},
		// Context: the response and inquiry helpers, CRD.
		{"bad ClaimResponse.outcome", response, set(claim+".outcome", "done"), func(b []byte) Result { return v.ValidatePASResponse(b) }, "", "Bundle.entry[0].resource.outcome", "The code done is not in the value set http://hl7.org/fhir/us/davinci-pas/ValueSet/ClaimResponseOutcome"},
		{"request submitted as a response", request, func(map[string]any) {}, func(b []byte) Result { return v.ValidatePASResponse(b) }, "", "Bundle", "Bundle.entry:ClaimResponse: minimum required = 1"},
		{"not a Bundle for $submit", crdCoverage, func(map[string]any) {}, nil, "", "Coverage", "Expected a Bundle, found a Coverage"},
		{"CRD Coverage without status", crdCoverage, del("status"), func(b []byte) Result { return v.ValidateCRDResource(b) }, "", "Coverage", "Coverage.status: minimum required = 1"},
		{"CRD draft order without subject", hook, del("context.draftOrders.entry.0.resource.subject"), func(b []byte) Result { return v.ValidateCRDHookRequest(b) }, "", "context.draftOrders.entry[0].resource", "subject: minimum required = 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := mutate(t, c.doc, c.mut)
			validate := c.validate
			if validate == nil {
				validate = v.ValidatePASRequest
			}
			sev := c.severity
			if sev == "" {
				sev = SeverityError
			}
			res := validate(doc)
			for _, is := range res.Issues {
				if is.Severity == sev && is.Expression == c.expr && strings.Contains(is.Diagnostics, c.fragment) {
					return
				}
			}
			t.Errorf("no %s at %s containing %q; got:", sev, c.expr, c.fragment)
			for _, is := range res.Issues {
				if is.Severity != SeverityInformation {
					t.Logf("  %s %s: %s", is.Severity, is.Expression, is.Diagnostics)
				}
			}
		})
	}
	if len(cases) < 40 {
		t.Fatalf("only %d negative cases", len(cases))
	}
}

// TestTolerances: the kit's DocumentReference (attachment.url, no data)
// gives warnings only, the Claim's reference to it conforms, and an
// attachment with neither url nor data is still an error (us-core-6).
func TestTolerances(t *testing.T) {
	v := registry(t).NewValidator(Options{})
	kit := readTestdata(t, "inferno-pas/approval_pa_submit_request_payload.json")
	const attachment = "entry.9.resource.content.0.attachment"
	cases := []struct {
		name      string
		mut       func(map[string]any)
		wantError string // fragment of the one expected error; "" for none
		wantWarn  []string
	}{
		{"url without data is tolerated", func(map[string]any) {}, "", []string{
			"Bundle.entry[9].resource.content[0].attachment: DocumentReference.content.attachment.data: minimum required = 1",
			"Bundle.entry[9].resource.content[0].attachment.url: DocumentReference.content.attachment.url: max allowed = 0",
		}},
		{"neither url nor data", del(attachment + ".url"), "us-core-6", nil},
		{"data as PAS wants it", both(del(attachment+".url"), set(attachment+".data", "aGVsbG8=")), "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := v.ValidatePASRequest(mutate(t, kit, c.mut))
			var errs []string
			for _, is := range res.Errors() {
				errs = append(errs, is.Expression+": "+is.Diagnostics)
			}
			switch {
			case c.wantError == "" && len(errs) > 0:
				t.Errorf("errors:\n%s", strings.Join(errs, "\n"))
			case c.wantError != "" && !strings.Contains(strings.Join(errs, "\n"), c.wantError):
				t.Errorf("no error containing %q; errors:\n%s", c.wantError, strings.Join(errs, "\n"))
			}
			for _, w := range c.wantWarn {
				found := false
				for _, is := range res.Issues {
					if is.Severity == SeverityWarning && strings.HasPrefix(is.Expression+": "+is.Diagnostics, w) && strings.Contains(is.Diagnostics, "; tolerated: ") {
						found = true
					}
				}
				if !found {
					t.Errorf("no tolerated warning %q", w)
				}
			}
		})
	}
	for _, tol := range Tolerances() {
		if tol.Profile == "" || tol.Path == "" || len(tol.Reason) < 20 || !registry(t).HasProfile(tol.Profile) {
			t.Errorf("incomplete or unknown tolerance %+v", tol)
		}
	}
}
