package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/priora/priora/conformance/check"
	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/profiles"
)

const inquirePath = "/fhir/Claim/$inquire"

// inquiryResults posts an inquiry, checks each returned Inquiry Response
// Bundle and returns their item results.
func inquiryResults(t *testing.T, e *testenv.Env, body []byte) []map[int]itemResult {
	t.Helper()
	r := e.Post(inquirePath, body)
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	var p struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name     string          `json:"name"`
			Resource json.RawMessage `json:"resource"`
		} `json:"parameter"`
	}
	if err := json.Unmarshal(r.Body, &p); err != nil || p.ResourceType != "Parameters" {
		t.Fatalf("answer is not Parameters: %s", r.Body)
	}
	var out []map[int]itemResult
	for _, part := range p.Parameter {
		if part.Name != "return" {
			t.Errorf("parameter %q, want return", part.Name)
		}
		b := decodeBundle(t, part.Resource)
		if b.Type != "collection" || b.Timestamp == "" {
			t.Errorf("inquiry response Bundle type %q timestamp %q", b.Type, b.Timestamp)
		}
		cr := b.Entry[0].Resource
		if cr["resourceType"] != "ClaimResponse" {
			t.Fatalf("first entry %v, want ClaimResponse", cr["resourceType"])
		}
		prof := cr["meta"].(map[string]any)["profile"].([]any)[0]
		if prof != "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claiminquiryresponse" {
			t.Errorf("ClaimResponse profile %v", prof)
		}
		_, items := checkPASResponse(t, part.Resource)
		out = append(out, items)
	}
	return out
}

func TestInquire(t *testing.T) {
	e := testenv.Start(t)
	for _, f := range []string{"pas/kit/approval_pa_submit_request_payload.json", "pas/ig/Bundle-HomecareAuthorizationBundleExample.json"} {
		if r := e.Post(submitPath, testenv.Fixture(t, f)); r.Status != 200 {
			t.Fatalf("submit %s: %d %s", f, r.Status, r.Body)
		}
	}
	igInquiry := testenv.Fixture(t, "pas/ig/Bundle-PASClaimInquiryBundleExample.json")
	kitInquiry := testenv.Fixture(t, "pas/kit/must_support_pa_inquire_request_payload.1.json")
	tests := []struct {
		name string
		body []byte
		want int
	}{
		{"IG example finds the homecare request by member, NPI and service", igInquiry, 1},
		{"kit inquiry targets the request by its authorization number", kitInquiry, 1},
		{"wrapped in Parameters", []byte(`{"resourceType":"Parameters","parameter":[{"name":"resource","resource":` + string(igInquiry) + `}]}`), 1},
		{"another member", edit(t, igInquiry, func(b map[string]any) {
			setIdentifier(b, "Patient", "http://example.org/MIN", "99999999999")
			for _, en := range b["entry"].([]any) {
				if r := en.(map[string]any)["resource"].(map[string]any); r["resourceType"] == "Coverage" {
					r["subscriberId"] = "99999999999"
				}
			}
		}), 0},
		{"another provider NPI (spec-53)", edit(t, igInquiry, func(b map[string]any) {
			setIdentifier(b, "Organization", "http://hl7.org/fhir/sid/us-npi", "1111111112") // a valid NPI (us-core-17)
		}), 0},
		{"a service the request did not ask for", edit(t, igInquiry, func(b map[string]any) {
			claim(b)["item"] = []any{itemWithCode(claim(b), "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "E0601")}
		}), 0},
		// The kit's request carries the same member id value under another
		// system (http://davinci-pas.org/MIN): another member's.
		{"not-applicable means any service (spec-43): every request of this member and provider", edit(t, igInquiry, func(b map[string]any) {
			claim(b)["item"] = []any{itemWithCode(claim(b), "http://terminology.hl7.org/CodeSystem/data-absent-reason", "not-applicable")}
		}), 1},
		{"unknown authorization number", edit(t, kitInquiry, func(b map[string]any) {
			c := claim(b)
			c["item"] = []any{}
			delete(c, "item")
			c["extension"] = []any{map[string]any{"url": "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-authorizationNumber", "valueString": "NOPE-1"}}
			// The kit labels its inquiry a request Bundle, whose Claim needs items.
			b["meta"] = map[string]any{"profile": []any{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-pas-inquiry-request-bundle"}}
		}), 1}, // an error response: TestInquireUnknownAuthorizationNumber
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := inquiryResults(t, e, tt.body)
			if len(got) != tt.want {
				t.Errorf("%d results, want %d", len(got), tt.want)
			}
		})
	}
}

func TestInquireAnswersTheCurrentResponse(t *testing.T) {
	e := testenv.Start(t)
	for _, f := range []string{
		"pas/kit/claim_update_initial_submit_payload.json",
		"pas/kit/claim_update_add_item_submit_payload.json",
		"pas/kit/claim_update_modify_cancel_submit_payload.json",
	} {
		if r := e.Post(submitPath, testenv.Fixture(t, f)); r.Status != 200 {
			t.Fatalf("submit %s: %d", f, r.Status)
		}
	}
	// The inquiry names the original request's numbers; the answer is the
	// current state after the updates (spec-47/48).
	got := inquiryResults(t, e, testenv.Fixture(t, "pas/kit/must_support_pa_inquire_request_payload.1.json"))
	if len(got) != 1 {
		t.Fatalf("%d results, want 1", len(got))
	}
	if items := got[0]; items[1].ReviewAction != "A1" || items[2].ReviewAction != "C" {
		t.Errorf("current results = %+v, want item 1 A1 and item 2 cancelled", items)
	}
}

func TestInquireRejects(t *testing.T) {
	e := testenv.Start(t)
	ig := testenv.Fixture(t, "pas/ig/Bundle-PASClaimInquiryBundleExample.json")
	tests := []struct {
		name, expression, diag string
		body                   []byte
	}{
		{"empty Bundle (kit error test)", "Bundle.entry", "no entries", testenv.Fixture(t, "pas/errors/nonconformant_pas_bundle.json")},
		{"no patient member id", "Bundle.entry[0].resource.patient", "member", edit(t, ig, func(b map[string]any) {
			setIdentifier(b, "Patient", "", "")
			for _, en := range b["entry"].([]any) {
				r := en.(map[string]any)["resource"].(map[string]any)
				if r["resourceType"] == "Coverage" {
					delete(r, "subscriberId")
					delete(r, "identifier")
				}
			}
		})},
		{"no provider NPI", "Bundle.entry[0].resource.provider", "NPI", edit(t, ig, func(b map[string]any) {
			setIdentifier(b, "Organization", "", "")
			for _, en := range b["entry"].([]any) {
				r := en.(map[string]any)["resource"].(map[string]any)
				if r["resourceType"] == "Claim" {
					delete(r, "careTeam")
				}
			}
		})},
		{"not a Bundle", "Patient", "expected", []byte(`{"resourceType":"Patient"}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.With(t).Post(inquirePath, tt.body)
			if r.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
			}
			checkOutcome(t, r.Body, tt.expression, tt.diag)
		})
	}
}

// setIdentifier replaces the identifiers of every resource of a type; an
// empty system drops them.
func setIdentifier(b map[string]any, resourceType, system, value string) {
	for _, en := range b["entry"].([]any) {
		r := en.(map[string]any)["resource"].(map[string]any)
		if r["resourceType"] != resourceType {
			continue
		}
		if system == "" {
			delete(r, "identifier")
			continue
		}
		r["identifier"] = []any{map[string]any{"system": system, "value": value}}
	}
}

func itemWithCode(c map[string]any, system, code string) map[string]any {
	it := cloneJSON(c["item"].([]any)[0]).(map[string]any)
	it["productOrService"] = map[string]any{"coding": []any{map[string]any{"system": system, "code": code}}}
	delete(it, "extension")
	return it
}

// TestInquireUnknownAuthorizationNumber: an inquiry for an authorization
// number no request of this patient and provider carries is answered with
// one Inquiry Response Bundle in error — X12 reject reason AA at the
// number's path, its X12 element, follow-up C, no items — whose
// ClaimResponse.request has no Claim to point at and says so with a
// data-absent-reason (PAS spec-44). Another provider's number is not
// found either: the answer does not disclose that it exists.
func TestInquireUnknownAuthorizationNumber(t *testing.T) {
	e := testenv.Start(t)
	ig := testenv.Fixture(t, "pas/ig/Bundle-HomecareAuthorizationBundleExample.json")
	r := e.Post(submitPath, ig)
	if r.Status != http.StatusOK {
		t.Fatalf("submit: %d %s", r.Status, r.Body)
	}
	known := testenv.AuthorizationID(t, r.Body)
	other := testenv.AuthorizationID(t, e.Post(submitPath, testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json")).Body)
	inquiry := func(number string, onItem bool) []byte {
		return edit(t, testenv.Fixture(t, "pas/ig/Bundle-PASClaimInquiryBundleExample.json"), func(b map[string]any) {
			x := []any{map[string]any{"url": "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-authorizationNumber", "valueString": number}}
			if onItem {
				it := claim(b)["item"].([]any)[0].(map[string]any)
				it["extension"] = append(x, anySlice(it["extension"])...)
			} else {
				claim(b)["extension"] = append(anySlice(claim(b)["extension"]), x...)
			}
		})
	}
	for _, tt := range []struct {
		name, number string
		onItem       bool
		wantPath     string
		wantElement  string
	}{
		{"unknown number on the Claim", "PA-NOPE", false, "Bundle.entry[0].resource.extension[%d]", "2000E-REF02"},
		{"unknown number on an item", "PA-NOPE", true, "Bundle.entry[0].resource.item[0].extension[0]", "2000F-REF02"},
		{"another provider's authorization", other, false, "Bundle.entry[0].resource.extension[%d]", "2000E-REF02"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := inquiry(tt.number, tt.onItem)
			returns := returnBundles(t, e.With(t).Post(inquirePath, body).Body)
			if len(returns) != 1 {
				t.Fatalf("%d returns, want 1 error response", len(returns))
			}
			cr := decodeBundle(t, returns[0]).Entry[0].Resource
			if cr["outcome"] != "error" || cr["item"] != nil || cr["addItem"] != nil {
				t.Errorf("outcome %v, item %v, addItem %v; want error without adjudication", cr["outcome"], cr["item"], cr["addItem"])
			}
			req, _ := cr["request"].(map[string]any)
			dar := check.Extensions(req, "data-absent-reason")
			if req["reference"] != nil || len(dar) != 1 || dar[0]["valueCode"] != "unknown" {
				t.Errorf("request %v, want only a data-absent-reason unknown", req)
			}
			for _, id := range anySlice(cr["identifier"]) {
				if id.(map[string]any)["system"] == "urn:priora:authorization" {
					t.Errorf("an error about no authorization names one: %v", id)
				}
			}
			errs := anySlice(cr["error"])
			if len(errs) != 1 {
				t.Fatalf("error = %v, want one", cr["error"])
			}
			e0 := errs[0].(map[string]any)
			if sys, code := firstCodingOf(e0["code"]); sys != "https://codesystem.x12.org/005010/901" || code != "AA" {
				t.Errorf("error.code %s|%s, want X12 901 AA", sys, code)
			}
			path := stringExt(e0, "extension-errorPath")
			want := tt.wantPath
			if strings.Contains(want, "%d") {
				want = fmt.Sprintf(want, len(anySlice(claim(decodeMap(t, body))["extension"]))-1)
			}
			if path != want {
				t.Errorf("errorPath %q, want %q", path, want)
			}
			if got := evalString(t, body, path); got != tt.number {
				t.Errorf("errorPath %s holds %q, want the number %q", path, got, tt.number)
			}
			el := check.Extensions(e0, "extension-errorElement")
			if len(el) != 1 || !strings.Contains(fmt.Sprint(el[0]), tt.wantElement) {
				t.Errorf("errorElement %v, want %s", el, tt.wantElement)
			}
			fu := check.Extensions(e0, "extension-errorFollowupAction")
			if len(fu) != 1 {
				t.Fatalf("errorFollowupAction %v", fu)
			}
			if _, code := firstCodingOf(fu[0]["valueCodeableConcept"]); code != "C" {
				t.Errorf("follow-up %q, want C", code)
			}
		})
	}
	t.Run("known number", func(t *testing.T) {
		returns := returnBundles(t, e.With(t).Post(inquirePath, inquiry(known, false)).Body)
		if len(returns) != 1 {
			t.Fatalf("%d returns, want 1", len(returns))
		}
		if cr := decodeBundle(t, returns[0]).Entry[0].Resource; cr["outcome"] == "error" {
			t.Errorf("the known authorization is answered with an error: %v", cr["error"])
		}
	})
}

func anySlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func firstCodingOf(cc any) (system, code string) {
	m, _ := cc.(map[string]any)
	cs := anySlice(m["coding"])
	if len(cs) == 0 {
		return "", ""
	}
	c := cs[0].(map[string]any)
	system, _ = c["system"].(string)
	code, _ = c["code"].(string)
	return system, code
}

func stringExt(m map[string]any, suffix string) string {
	x := check.Extensions(m, suffix)
	if len(x) == 0 {
		return ""
	}
	s, _ := x[0]["valueString"].(string)
	return s
}

func decodeMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// evalString evaluates a FHIRPath (as errorPath gives it, from Bundle)
// on a JSON body and returns the string value it names.
func evalString(t *testing.T, body []byte, path string) string {
	t.Helper()
	fp, err := profiles.CompileFHIRPath(path)
	if err != nil {
		t.Fatalf("errorPath %q is not FHIRPath: %v", path, err)
	}
	root, err := profiles.ParseResource(body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fp.Evaluate([]profiles.Value{root}, nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("errorPath %q gives %d values (%v)", path, len(got), err)
	}
	sub, _ := profiles.CompileFHIRPath("value")
	v, err := sub.Evaluate(got, nil)
	if err != nil || len(v) != 1 {
		t.Fatalf("errorPath %q names no extension value", path)
	}
	return v[0].String()
}
