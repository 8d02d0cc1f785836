package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
)

// TestCRDValidationModes: with PRIORA_CRD_VALIDATION=enforce a call whose
// order breaks a CRD profile rule is unprocessable (422, hook-13, as FHIR
// create uses it); under log it is answered and the finding logged; off
// (the default) does not validate.
func TestCRDValidationModes(t *testing.T) {
	// The IG's order-sign example with the ServiceRequest's subject removed:
	// CRD profile-servicerequest requires it.
	body := edit(t, testenv.Fixture(t, "crd/ig/CRDServiceRequest.json"), func(b map[string]any) {
		for _, o := range b["context"].(map[string]any)["draftOrders"].(map[string]any)["entry"].([]any) {
			r := o.(map[string]any)["resource"].(map[string]any)
			if r["resourceType"] == "ServiceRequest" {
				delete(r, "subject")
			}
		}
	})
	for _, tt := range []struct {
		mode   string
		status int
	}{
		{app.ValidationEnforce, http.StatusUnprocessableEntity},
		{app.ValidationLog, http.StatusOK},
		{"", http.StatusOK},
	} {
		t.Run("mode "+tt.mode, func(t *testing.T) {
			e := testenv.Start(t, testenv.WithConfig(func(c *app.Config) { c.CRDValidation = tt.mode }))
			r := e.With(t).Post("/cds-services/order-sign-crd", body, "Content-Type", "application/json")
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %.300s", r.Status, tt.status, r.Body)
			}
			switch tt.mode {
			case app.ValidationEnforce:
				if !strings.Contains(string(r.Body), `"error"`) || !strings.Contains(string(r.Body), "ServiceRequest.subject") {
					t.Errorf("422 does not name the broken rule: %s", r.Body)
				}
			case app.ValidationLog:
				if !strings.Contains(e.Logs.String(), `"profile":"crd-hook"`) {
					t.Errorf("log mode did not log the validation")
				}
			default:
				if strings.Contains(e.Logs.String(), `"profile":"crd-hook"`) {
					t.Errorf("validation ran with CRD validation off")
				}
			}
		})
	}
}
