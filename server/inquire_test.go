package server_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/priora/priora/internal/testenv"
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
		}), 0},
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
