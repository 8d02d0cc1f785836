package profiles

import (
	"strings"
	"testing"
)

// smokingStatus is a smoking-status Observation claiming the US Core
// profile without a version, in the shape of one US Core version:
// 3.1.1 requires issued and no category or effective; 6.1.0 and 7.0.0
// require the social-history category and effective[x].
func smokingStatus(shape string) map[string]any {
	o := map[string]any{
		"resourceType":         "Observation",
		"id":                   "smoking",
		"meta":                 map[string]any{"profile": []any{"http://hl7.org/fhir/us/core/StructureDefinition/us-core-smokingstatus"}},
		"status":               "final",
		"code":                 map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "72166-2", "display": "Tobacco smoking status"}}},
		"subject":              map[string]any{"reference": "Patient/SubscriberExample"},
		"valueCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "8517006", "display": "Ex-smoker"}}},
	}
	switch shape {
	case "3.1.1":
		o["issued"] = "2024-05-01T10:00:00Z"
	case "7.0.0":
		o["category"] = []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "social-history"}}}}
		o["effectiveDateTime"] = "2024-05-01"
	case "none":
		// Neither issued nor effective: no version fits.
	}
	return o
}

// TestUnversionedClaimsAreDeterministic: a request Bundle carrying a
// smoking-status Observation of one US Core version gets the same answer
// every time (PAS 2.2.1 depends on US Core 3.1.1, 6.1.0 and 7.0.0): the
// claim is met by the version the Observation conforms to, and the version
// used is reported.
func TestUnversionedClaimsAreDeterministic(t *testing.T) {
	v := registry(t).NewValidator(Options{})
	request := readTestdata(t, "pas-2.2.1/Bundle-ReferralAuthorizationBundleExample.json")
	for _, tt := range []struct {
		shape       string
		wantErrors  bool
		wantVersion string
	}{
		{"3.1.1", false, "3.1.1"},
		{"7.0.0", false, "7.0.0"},
		{"none", true, ""},
	} {
		t.Run(tt.shape, func(t *testing.T) {
			doc := mutate(t, request, appendTo("entry", map[string]any{
				"fullUrl":  "http://example.org/fhir/Observation/smoking",
				"resource": smokingStatus(tt.shape),
			}))
			var first []string
			for i := 0; i < 20; i++ {
				res := v.ValidatePASRequest(doc)
				var got []string
				for _, is := range res.Issues {
					if strings.HasPrefix(is.Expression, "Bundle.entry[10]") && is.Severity != SeverityInformation || strings.Contains(is.Diagnostics, "unversioned profile claim") {
						got = append(got, is.Severity+" "+is.Expression+": "+is.Diagnostics)
					}
				}
				if i == 0 {
					first = got
					continue
				}
				if strings.Join(got, "\n") != strings.Join(first, "\n") {
					t.Fatalf("run %d differs from run 0:\n%s\n--- run 0:\n%s", i, strings.Join(got, "\n"), strings.Join(first, "\n"))
				}
			}
			all := strings.Join(first, "\n")
			if hasErr := strings.Contains(all, "\nerror ") || strings.HasPrefix(all, "error "); hasErr != tt.wantErrors {
				t.Errorf("errors = %v, want %v:\n%s", hasErr, tt.wantErrors, all)
			}
			if tt.wantVersion != "" && !strings.Contains(all, "checked as version "+tt.wantVersion+" (of 7.0.0, 3.1.1, 6.1.0)") {
				t.Errorf("the version used is not reported as %s:\n%s", tt.wantVersion, all)
			}
		})
	}
}
