package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/priora/priora/hooks/hookstest"
	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/store"
)

// withAssertion annotates the order the kit's items request (their
// ServiceRequest, now asking for CPT 27447, which the sample rules pend)
// with the CRD coverage-information extension carrying assertion id, as an
// EHR does after a CRD order-sign call.
func withAssertion(t *testing.T, id string) []byte {
	return edit(t, pendedRequest(t), func(b map[string]any) {
		for _, en := range b["entry"].([]any) {
			r := en.(map[string]any)["resource"].(map[string]any)
			if r["resourceType"] != "ServiceRequest" {
				continue
			}
			var exts []any // replace the coverage-information the kit already carries
			for _, x := range r["extension"].([]any) {
				if x.(map[string]any)["url"] != "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information" {
					exts = append(exts, x)
				}
			}
			r["extension"] = append(exts, map[string]any{
				"url": "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information",
				"extension": []any{
					map[string]any{"url": "coverage", "valueReference": map[string]any{"reference": "Coverage/InsuranceExample"}},
					map[string]any{"url": "covered", "valueCode": "covered"},
					map[string]any{"url": "pa-needed", "valueCode": "satisfied"},
					map[string]any{"url": "date", "valueDate": "2026-11-01"},
					map[string]any{"url": "coverage-assertion-id", "valueString": id},
					map[string]any{"url": "satisfied-pa-id", "valueString": "GOLD-" + id},
				},
			})
		}
	})
}

// goldCardRules pend a knee replacement for chronic pain (G89.4) unless
// the ordering provider is gold-carded, and pend it for anything else.
const goldCardRules = `
version: 1
rules:
  - id: knee-gold
    match: {codes: [{system: "http://www.ama-assn.org/go/cpt", codes: ["27447"]}], diagnoses: [{system: "http://hl7.org/fhir/sid/icd-10-cm", codes: ["G89.4"]}]}
    decision: {action: pend, reason: knee replacement needs review unless gold-carded}
    crd: {covered: covered, paNeeded: auth-needed, goldCard: ["1234567893"]}
  - id: knee
    match: {codes: [{system: "http://www.ama-assn.org/go/cpt", codes: ["27447"]}]}
    decision: {action: pend, reason: knee replacement needs review}
`

// TestGoldCardAssertionReplay: a gold-card assertion approves a PAS item
// only for the organization it was issued to, for the same member, code,
// quantity, period and gold-carded provider, while the rule still waives
// prior authorization and before it expires. Tenant B citing tenant A's
// assertion on another patient, diagnosis and provider gets the normal
// adjudication, with a note saying why the assertion was not used.
func TestGoldCardAssertionReplay(t *testing.T) {
	s := startSecure(t, testenv.WithRules(goldCardRules))
	ctx := context.Background()
	tokA := s.Token(s.keyA, clientA, scopesAll)
	tokB := s.Token(s.keyB, clientB, scopesAll)
	knee := []store.AssertionCode{{System: "http://www.ama-assn.org/go/cpt", Code: "27447"}}
	// What order-sign stores for org-a's gold-carded surgeon (NPI 1234567893)
	// ordering a knee replacement for member 12345678901.
	good := store.CoverageAssertion{Tenant: "org-a", Client: s.ehrIss, Hook: "order-sign", Order: "ServiceRequest/1", Codes: knee,
		MemberID: "12345678901", Covered: "covered", PANeeded: "satisfied", PASatisfied: true, RuleID: "knee-gold",
		GoldCardNPI: "1234567893", Quantity: 1, PeriodStart: "2016-08-01", PeriodEnd: "2016-08-31", Date: time.Now()}
	variant := func(id string, edit func(*store.CoverageAssertion)) store.CoverageAssertion {
		a := good
		a.ID, a.SatisfiedPAID = id, "GOLD-"+id
		if edit != nil {
			edit(&a)
		}
		return a
	}
	assertions := []store.CoverageAssertion{
		variant("ca-gold", nil),
		variant("ca-expired", func(a *store.CoverageAssertion) { a.Expires = time.Now().Add(-24 * time.Hour) }),
		variant("ca-other-code", func(a *store.CoverageAssertion) {
			a.Codes = []store.AssertionCode{{System: "http://www.ama-assn.org/go/cpt", Code: "99213"}}
		}),
		variant("ca-other-member", func(a *store.CoverageAssertion) { a.MemberID = "55500001" }),
		variant("ca-other-npi", func(a *store.CoverageAssertion) { a.GoldCardNPI = "1122334455" }),
		variant("ca-one-unit-less", func(a *store.CoverageAssertion) { a.Quantity = 0.5 }),
		variant("ca-other-period", func(a *store.CoverageAssertion) { a.PeriodStart, a.PeriodEnd = "2017-01-01", "2017-01-31" }),
		variant("ca-auth-needed", func(a *store.CoverageAssertion) { a.PANeeded, a.PASatisfied = "auth-needed", false }),
	}
	if err := s.App.Store.SaveCoverageAssertions(ctx, assertions); err != nil {
		t.Fatal(err)
	}
	n := 0
	submit := func(t *testing.T, tok, assertion string, change func(b map[string]any)) (*testenv.Response, map[int]itemResult) {
		n++
		body := withAssertion(t, assertion)
		body = edit(t, body, func(b map[string]any) {
			b["identifier"].(map[string]any)["value"] = fmt.Sprintf("replay-%d", n)
			if change != nil {
				change(b)
			}
		})
		r := s.With(t).Post(submitPath, body, testenv.Bearer(tok)...)
		if r.Status != 200 {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		_, items := checkPASResponse(t, r.Body)
		return r, items
	}
	// Tenant B's claim: another patient (member), another diagnosis, another
	// ordering provider.
	tenantB := func(b map[string]any) {
		for _, en := range b["entry"].([]any) {
			r := en.(map[string]any)["resource"].(map[string]any)
			switch r["resourceType"] {
			case "Coverage":
				r["subscriberId"] = "55500001"
				r["identifier"] = []any{map[string]any{"system": "http://davinci-pas.org/MEMBERID", "value": "55500001-01",
					"type": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}}}}}
			case "Patient":
				r["identifier"] = []any{map[string]any{"system": "http://davinci-pas.org/MIN", "value": "55500001"}}
			case "Practitioner":
				r["identifier"] = []any{map[string]any{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1122334455"}}
			case "Claim":
				r["diagnosis"].([]any)[0].(map[string]any)["diagnosisCodeableConcept"] = map[string]any{"coding": []any{
					map[string]any{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M17.11"}}}
			}
		}
	}
	tests := []struct {
		name, tok, assertion string
		edit                 func(b map[string]any)
		want                 string // review action of every item
		why                  string // the note when the assertion is not used
	}{
		{"tenant A, the assertion's own order", tokA, "ca-gold", nil, "A1", ""},
		{"tenant B replays A's assertion on another patient, diagnosis and provider", tokB, "ca-gold", tenantB, "A4", "issued to another organization"},
		{"tenant B replays A's assertion on A's very claim", tokB, "ca-gold", nil, "A4", "issued to another organization"},
		{"another diagnosis: the rule's conditions fail at submit time", tokA, "ca-gold", func(b map[string]any) {
			claim(b)["diagnosis"].([]any)[0].(map[string]any)["diagnosisCodeableConcept"] = map[string]any{"coding": []any{
				map[string]any{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M17.11"}}}
		}, "A4", "no longer meets the conditions of coverage rule knee-gold"},
		{"expired", tokA, "ca-expired", nil, "A4", "expired on"},
		{"another code", tokA, "ca-other-code", nil, "A4", "issued for another service"},
		{"another member", tokA, "ca-other-member", nil, "A4", "issued for another member"},
		{"another gold-carded provider", tokA, "ca-other-npi", nil, "A4", "not the provider it was issued for"},
		{"more units than CRD saw", tokA, "ca-one-unit-less", nil, "A4", "covers at most 0.5 units"},
		{"outside the period CRD saw", tokA, "ca-other-period", nil, "A4", "outside the period"},
		{"PA not satisfied", tokA, "ca-auth-needed", nil, "A4", ""},
		{"never issued", tokA, "never-issued", nil, "A4", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, items := submit(t, tt.tok, tt.assertion, tt.edit)
			for seq, it := range items {
				if it.ReviewAction != tt.want {
					t.Errorf("item %d = %s, want %s", seq, it.ReviewAction, tt.want)
				}
			}
			if tt.want == "A1" {
				if !strings.Contains(string(r.Body), "CRD coverage assertion ca-gold") || items[1].Number != "GOLD-ca-gold" {
					t.Errorf("the approval does not name the CRD assertion (review number %q)", items[1].Number)
				}
			}
			if tt.why != "" && (!strings.Contains(string(r.Body), "was not used: ") || !strings.Contains(string(r.Body), tt.why)) {
				t.Errorf("the response does not say why the assertion was not used (%q)", tt.why)
			}
		})
	}
}

// TestCRDThenPAS is the whole path: a CRD order-sign says prior
// authorization is satisfied for the order; the EHR then submits it to
// PAS carrying the assertion, and PAS approves without review what its
// rules would otherwise pend.
func TestCRDThenPAS(t *testing.T) {
	rules := `
version: 1
rules:
  - id: pt-eval
    match: {codes: [{system: "http://www.ama-assn.org/go/cpt", codes: ["97161"]}]}
    decision: {action: pend, reason: needs review unless gold-carded}
    crd: {covered: covered, paNeeded: satisfied}
`
	e := testenv.Start(t, testenv.WithRules(rules))
	hook := edit(t, testenv.Fixture(t, "crd/ig/CRDServiceRequest.json"), func(b map[string]any) {
		orders := b["context"].(map[string]any)["draftOrders"].(map[string]any)["entry"].([]any)
		for _, o := range orders {
			r := o.(map[string]any)["resource"].(map[string]any)
			if r["resourceType"] == "ServiceRequest" {
				r["code"] = map[string]any{"coding": []any{map[string]any{"system": "http://www.ama-assn.org/go/cpt", "code": "97161"}}}
			}
		}
	})
	r := e.Post("/cds-services/order-sign-crd", hook, "Content-Type", "application/json")
	if r.Status != 200 {
		t.Fatalf("order-sign: %d %s", r.Status, r.Body)
	}
	got := hookstest.Check(t, "2.2", "order-sign", hook, r.Body)
	var assertion string
	for _, cis := range got.CoverageInfo {
		for _, ci := range cis {
			if ci.PANeeded == "satisfied" {
				assertion = ci.AssertionID
			}
		}
	}
	if assertion == "" {
		t.Fatalf("CRD did not say prior authorization is satisfied: %s", r.Body)
	}
	submit := func(withAssertion bool) map[int]itemResult {
		body := edit(t, testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json"), func(b map[string]any) {
			b["identifier"].(map[string]any)["value"] = fmt.Sprintf("crd-then-pas-%v", withAssertion)
			for _, it := range claim(b)["item"].([]any) {
				it.(map[string]any)["productOrService"] = map[string]any{"coding": []any{map[string]any{"system": "http://www.ama-assn.org/go/cpt", "code": "97161"}}}
			}
			for _, en := range b["entry"].([]any) {
				res := en.(map[string]any)["resource"].(map[string]any)
				switch res["resourceType"] {
				case "Coverage":
					res["subscriberId"] = "888009335" // the member CRD answered for
				case "ServiceRequest":
					var exts []any
					for _, x := range res["extension"].([]any) {
						if x.(map[string]any)["url"] != "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information" {
							exts = append(exts, x)
						}
					}
					if withAssertion {
						exts = append(exts, map[string]any{
							"url": "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information",
							"extension": []any{
								map[string]any{"url": "coverage", "valueReference": map[string]any{"reference": "Coverage/InsuranceExample"}},
								map[string]any{"url": "covered", "valueCode": "covered"},
								map[string]any{"url": "pa-needed", "valueCode": "satisfied"},
								map[string]any{"url": "date", "valueDate": "2026-11-01"},
								map[string]any{"url": "coverage-assertion-id", "valueString": assertion},
								map[string]any{"url": "satisfied-pa-id", "valueString": "SAT-1"},
							},
						})
					}
					res["extension"] = exts
				}
			}
		})
		r := e.Post(submitPath, body)
		if r.Status != 200 {
			t.Fatalf("submit: %d %s", r.Status, r.Body)
		}
		_, items := checkPASResponse(t, r.Body)
		return items
	}
	if items := submit(false); items[1].ReviewAction != "A4" {
		t.Fatalf("without the assertion item 1 = %s, want the rule's pend", items[1].ReviewAction)
	}
	if items := submit(true); items[1].ReviewAction != "A1" || items[2].ReviewAction != "A1" {
		t.Errorf("with the CRD assertion items = %+v, want both approved without review", items)
	}
}
