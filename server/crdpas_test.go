package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

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
			r := e.Post(submitPath, withAssertion(t, tt.assertion))
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
