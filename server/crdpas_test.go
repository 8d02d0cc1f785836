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

func TestGoldCardAssertionApprovesWithoutReview(t *testing.T) {
	e := testenv.Start(t)
	ctx := context.Background()
	knee := []store.AssertionCode{{System: "http://www.ama-assn.org/go/cpt", Code: "27447"}}
	err := e.App.Store.SaveCoverageAssertions(ctx, []store.CoverageAssertion{
		{ID: "ca-gold", Hook: "order-sign", Order: "ServiceRequest/1", Codes: knee, Covered: "covered",
			PANeeded: "satisfied", PASatisfied: true, SatisfiedPAID: "GOLD-ca-gold", RuleID: "gold-card-ortho", Date: time.Now()},
		{ID: "ca-expired", Hook: "order-sign", Order: "ServiceRequest/2", Codes: knee, Covered: "covered",
			PANeeded: "satisfied", PASatisfied: true, Date: time.Now().Add(-48 * time.Hour), Expires: time.Now().Add(-24 * time.Hour)},
		{ID: "ca-other-code", Hook: "order-sign", Order: "ServiceRequest/3", Covered: "covered", PANeeded: "satisfied", PASatisfied: true,
			Codes: []store.AssertionCode{{System: "http://www.ama-assn.org/go/cpt", Code: "99213"}}, Date: time.Now()},
		{ID: "ca-auth-needed", Hook: "order-sign", Order: "ServiceRequest/4", Codes: knee, Covered: "covered", PANeeded: "auth-needed", Date: time.Now()},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		assertion string
		want      string
	}{
		{"ca-gold", "A1"},
		{"ca-expired", "A4"},
		{"ca-other-code", "A4"},
		{"ca-auth-needed", "A4"},
		{"never-issued", "A4"},
	}
	for _, tt := range tests {
		t.Run(tt.assertion, func(t *testing.T) {
			r := e.With(t).Post(submitPath, withAssertion(t, tt.assertion))
			if r.Status != 200 {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			_, items := checkPASResponse(t, r.Body)
			for seq, it := range items {
				if it.ReviewAction != tt.want {
					t.Errorf("item %d = %s, want %s", seq, it.ReviewAction, tt.want)
				}
			}
			if tt.want == "A1" {
				if !strings.Contains(string(r.Body), "CRD coverage assertion ca-gold") {
					t.Errorf("response does not say the approval came from the CRD assertion")
				}
				if items[1].Number != "GOLD-ca-gold" {
					t.Errorf("review number %q, want the satisfied-pa-id", items[1].Number)
				}
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
