package testenv

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/priora/priora/conformance/check"
	"github.com/priora/priora/hooks/hookstest"
	"github.com/priora/priora/profiles"
)

// Validator returns the profile validator shared by every test of the
// binary (hookstest's): the registry is loaded, and each definition
// compiled, once.
func Validator(t testing.TB) *profiles.Validator {
	t.Helper()
	return hookstest.Validator(t)
}

// RequireValid fails the test (without stopping it) for every error or
// fatal issue of res; what names the checked document in the message.
func RequireValid(t testing.TB, what string, res profiles.Result) {
	t.Helper()
	for _, is := range res.Errors() {
		t.Errorf("%s does not conform: %s %s: %s", what, is.Severity, is.Expression, is.Diagnostics)
	}
}

// requirePASRules applies the shared PAS response checker
// (conformance/check), the one the conformance suite uses, beyond the
// profiles.
func requirePASRules(t testing.TB, what string, body []byte, inquiry bool) {
	t.Helper()
	b, err := check.Decode(body)
	if err != nil {
		t.Errorf("%s is not a JSON object: %v", what, err)
		return
	}
	_, fs := check.PASResponse(b, check.PASOptions{Inquiry: inquiry})
	for _, f := range fs {
		t.Errorf("%s: %s", what, f)
	}
}

// checkPASResponse validates the successful answer of a PAS operation
// against the PAS 2.2.1 profiles: a $submit answer against the response
// Bundle profile, each `return` Bundle of an $inquire answer against the
// inquiry response Bundle profile. Other paths are not checked here.
func checkPASResponse(t testing.TB, path string, body []byte) {
	t.Helper()
	switch path {
	case "/fhir/Claim/$submit":
		RequireValid(t, "$submit response", Validator(t).ValidatePASResponse(body))
		requirePASRules(t, "$submit response", body, false)
	case "/fhir/Claim/$inquire":
		var p struct {
			ResourceType string `json:"resourceType"`
			Parameter    []struct {
				Name     string          `json:"name"`
				Resource json.RawMessage `json:"resource"`
			} `json:"parameter"`
		}
		if err := json.Unmarshal(body, &p); err != nil || p.ResourceType != "Parameters" {
			t.Errorf("$inquire response is not a Parameters resource (%v)", err)
			return
		}
		for i, part := range p.Parameter {
			if part.Name != "return" {
				continue
			}
			what := "$inquire response Parameters.parameter[" + strconv.Itoa(i) + "].resource"
			RequireValid(t, what, Validator(t).ValidatePASInquiryResponse(part.Resource))
			requirePASRules(t, what, part.Resource, true)
		}
	}
}
