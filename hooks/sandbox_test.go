package hooks

import (
	"context"
	"strings"
	"testing"

	"github.com/priora/priora/hooks/hookstest"
)

// The orders below have the shapes the HL7 CDS Hooks sandbox
// (github.com/cds-hooks/sandbox) sends, written from its source:
// src/reducers/medication-reducers.js builds the Rx Sign MedicationRequest
// (category as a single object when a supply duration is set, reasonCode as
// the chosen Condition's code object), src/components/Pama/pama.jsx the
// PAMA Imaging ServiceRequest (code.coding holds the chosen study, an empty
// object before one is chosen). Its draftOrders Bundle has no type.

// sandboxRx is the sandbox's Rx Sign order for RxNorm 327361, which the
// sample rules' specialty-biologic policy names.
func sandboxRx() map[string]any {
	return map[string]any{
		"resourceType": "MedicationRequest", "id": "request-123", "status": "draft", "intent": "order",
		"subject":    map[string]any{"reference": "Patient/p1"},
		"authoredOn": "2026-03-10",
		"dosageInstruction": []any{map[string]any{
			"timing":      map[string]any{"repeat": map[string]any{"frequency": 1, "period": 1, "periodUnit": "d"}},
			"doseAndRate": []any{map[string]any{"doseQuantity": map[string]any{"value": 1, "system": "http://unitsofmeasure.org", "code": "{pill}"}}},
		}},
		"dispenseRequest": map[string]any{"expectedSupplyDuration": map[string]any{"value": 30, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}},
		"category":        map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "community"}}},
		"medicationCodeableConcept": map[string]any{"text": "adalimumab", "coding": []any{map[string]any{
			"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "327361", "display": "adalimumab"}}},
		"reasonCode": map[string]any{"text": "Rheumatoid arthritis", "coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "69896004"}}},
	}
}

// sandboxPAMA is the sandbox's PAMA Imaging order; study is nil before the
// user has chosen one.
func sandboxPAMA(study map[string]any) map[string]any {
	coding := map[string]any{}
	text := any(nil)
	if study != nil {
		coding, text = study, study["display"]
	}
	code := map[string]any{"coding": []any{coding}}
	if text != nil {
		code["text"] = text
	}
	return map[string]any{
		"resourceType": "ServiceRequest", "id": "example-request-id", "status": "draft", "intent": "plan",
		"code":       code,
		"subject":    map[string]any{"reference": "Patient/p1"},
		"reasonCode": []any{},
	}
}

// TestSandboxRequestShapes: CRD reads what can be read of the sandbox's
// orders and never guesses. The Rx Sign MedicationRequest's RxNorm code is
// read although category and reasonCode are malformed, so the drug policy
// applies; a PAMA order whose study is not chosen yet has no code, so the
// answer says coverage could not be determined (indeterminate in CRD 2.2,
// conditional in 2.0) and no coverage assertion is stored.
func TestSandboxRequestShapes(t *testing.T) {
	ct := map[string]any{"system": cpt, "code": "70450", "display": "Computed tomography, head or brain; without contrast material"}
	tests := []struct {
		name, hook, version string
		order               map[string]any
		covered             string // coverage-information covered
		unread              bool   // the answer says the service could not be read
	}{
		{"Rx Sign: the RxNorm code is read", OrderSign, crdVersion22, sandboxRx(), "conditional", false},
		{"PAMA without a study (2.2)", OrderSelect, crdVersion22, sandboxPAMA(nil), "indeterminate", true},
		{"PAMA without a study (2.0)", OrderSelect, crdVersion20, sandboxPAMA(nil), "conditional", true},
		{"PAMA with a study", OrderSelect, crdVersion22, sandboxPAMA(ct), "covered", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rec := newTestService(t, nil)
			spec := callSpec{hook: tt.hook, orders: []map[string]any{tt.order}, version: tt.version}
			body := edit(t, spec.body(t), func(m map[string]any) {
				delete(m["context"].(map[string]any)["draftOrders"].(map[string]any), "type")
			})
			ans, err := s.Call(context.Background(), ServiceID(tt.hook), Caller{Tenant: "t1"}, body)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			r := hookstest.Check(t, tt.version, tt.hook, body, ans.Body)
			ref := tt.order["resourceType"].(string) + "/" + tt.order["id"].(string)
			cis := r.CoverageInfo[ref]
			if len(cis) != 1 {
				t.Fatalf("%s: %d coverage-information extensions, want 1: %s", ref, len(cis), ans.Body)
			}
			ci := cis[0]
			if ci.Covered != tt.covered {
				t.Errorf("covered = %q, want %q (reasons %v)", ci.Covered, tt.covered, ci.Reasons)
			}
			said := strings.Contains(strings.Join(ci.Reasons, " "), "the ordered service could not be read")
			if said != tt.unread {
				t.Errorf("reasons %v: says the service could not be read = %v, want %v", ci.Reasons, said, tt.unread)
			}
			if stored := len(rec.assertions) > 0; stored == tt.unread {
				t.Errorf("%d coverage assertions stored; want one only for a service that was read", len(rec.assertions))
			}
		})
	}
}
