package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
)

// profileInvalidRequest is the IG referral request with two PAS profile
// violations that base FHIR parsing accepts: Claim.item[0].category
// (1..1 in profile-claim) and the insurer's name (1..1 in
// profile-insurer, so the references to the insurer, from the Claim and
// from Coverage.payor, and to that Coverage break their target profiles).
func profileInvalidRequest(t *testing.T) []byte {
	return edit(t, testenv.Fixture(t, "pas/ig/Bundle-ReferralAuthorizationBundleExample.json"), func(b map[string]any) {
		delete(claim(b)["item"].([]any)[0].(map[string]any), "category")
		delete(b["entry"].([]any)[2].(map[string]any)["resource"].(map[string]any), "name")
	})
}

var profileInvalidErrors = []struct{ expression, diagnostic string }{
	{"Bundle.entry[0].resource.item[0]", "Claim.item.category: minimum required = 1, but only found 0"},
	{"Bundle.entry[2].resource", "Organization.name: minimum required = 1, but only found 0"},
	{"Bundle.entry[0].resource.insurer", "does not conform to the target profile http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-insurer"},
	{"Bundle.entry[3].resource.payor[0]", "does not conform to the target profile http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-insurer"},
	{"Bundle.entry[0].resource.insurance[0].coverage", "does not conform to the target profile http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-coverage"},
}

func TestSubmitProfileValidation(t *testing.T) {
	bad := profileInvalidRequest(t)
	t.Run("enforce", func(t *testing.T) {
		e := testenv.Start(t)
		r := e.With(t).Post(submitPath, bad)
		if r.Status != http.StatusBadRequest {
			t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
		}
		for _, w := range profileInvalidErrors {
			checkOutcome(t, r.Body, w.expression, w.diagnostic)
		}
		var oo struct {
			Issue []struct {
				Severity, Code, Diagnostics string
				Expression                  []string
			}
		}
		if err := json.Unmarshal(r.Body, &oo); err != nil {
			t.Fatal(err)
		}
		errs := 0
		for _, is := range oo.Issue {
			if is.Severity == "information" {
				t.Errorf("information issue in the answer: %s", is.Diagnostics)
			}
			if is.Severity != "error" {
				continue
			}
			errs++
			if is.Code == "" || is.Diagnostics == "" || len(is.Expression) != 1 {
				t.Errorf("error issue lacks code, diagnostics or expression: %+v", is)
			}
		}
		if errs != len(profileInvalidErrors) {
			t.Errorf("%d errors, want %d: %s", errs, len(profileInvalidErrors), r.Body)
		}
		if n := countAuthorizations(t, e); n != 0 {
			t.Errorf("a rejected request stored %d authorizations", n)
		}
	})
	t.Run("log", func(t *testing.T) {
		e := testenv.Start(t, testenv.WithoutResponseChecks(), testenv.WithConfig(func(c *app.Config) { c.Validation = app.ValidationLog }))
		r := e.With(t).Post(submitPath, bad)
		if r.Status != http.StatusOK {
			t.Fatalf("status %d, want 200 (log only): %s", r.Status, r.Body)
		}
		logs := e.Logs.String()
		line := ""
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, "profile validation") {
				line = l
			}
		}
		if !strings.Contains(line, `"errors":5`) || !strings.Contains(line, `"warnings":`) {
			t.Errorf("no log line with the error and warning counts: %s", logs)
		}
		for _, w := range profileInvalidErrors {
			if !strings.Contains(line, `"`+w.expression+`"`) {
				t.Errorf("log line lacks expression %s: %s", w.expression, line)
			}
		}
		for _, leak := range []string{"minimum required", "SMITH", "12345678901"} {
			if strings.Contains(logs, leak) {
				t.Errorf("logs contain %q", leak)
			}
		}
	})
	t.Run("off", func(t *testing.T) {
		e := testenv.Start(t, testenv.WithoutResponseChecks(), testenv.WithConfig(func(c *app.Config) { c.Validation = app.ValidationOff }))
		if r := e.With(t).Post(submitPath, bad); r.Status != http.StatusOK {
			t.Fatalf("status %d, want 200 (validation off): %s", r.Status, r.Body)
		}
		if strings.Contains(e.Logs.String(), "profile validation") {
			t.Error("validation ran although it is off")
		}
	})
}

func TestInquireProfileValidation(t *testing.T) {
	e := testenv.Start(t)
	bad := edit(t, testenv.Fixture(t, "pas/ig/Bundle-PASClaimInquiryBundleExample.json"), func(b map[string]any) {
		delete(b["entry"].([]any)[2].(map[string]any)["resource"].(map[string]any), "name")
	})
	r := e.Post(inquirePath, bad)
	if r.Status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
	}
	checkOutcome(t, r.Body, "Bundle.entry[0].resource.insurer", "does not conform to the target profile http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-insurer")
}
