// Package hookstest reports the findings of the shared CRD response
// checker (conformance/check: CDS Hooks 2.0 and Da Vinci CRD 2.2.1, 2.0.1
// in its mode) as test errors, for tests of the hooks and server packages.
package hookstest

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/priora/priora/conformance/check"
	"github.com/priora/priora/profiles"
)

// CoverageInfoURL is the CRD coverage-information extension.
const CoverageInfoURL = check.CoverageInfoURL

// CoverageInfo is one coverage-information extension, flattened.
type CoverageInfo = check.CoverageInfo

// Response is a decoded CDS Hooks response.
type Response struct {
	Cards         []map[string]any
	SystemActions []map[string]any
	HasActions    bool
	// CoverageInfo lists every coverage-information extension of the
	// system actions, by the annotated resource's "Type/id".
	CoverageInfo map[string][]CoverageInfo
}

// Check decodes a response and reports every rule it breaks as a test
// error; request is the hook call it answers (its resources are the
// originals for resp-37).
func Check(t testing.TB, version, hook string, request, response []byte) *Response {
	t.Helper()
	body, err := check.Decode(response)
	if err != nil {
		t.Fatalf("response is not a JSON object: %v", err)
	}
	req, _ := check.Decode(request)
	ValidateActions(t, version, request, response)
	fs := check.HookResponse(body, hook, version, false)
	cis, more := check.Coverage(body, check.CoverageOptions{Version: version, Hook: hook, Originals: check.Originals(req)})
	for _, f := range append(fs, more...) {
		if !f.Warn {
			t.Errorf("%s", f)
		}
	}
	var r Response
	var decoded struct {
		Cards         []map[string]any `json:"cards"`
		SystemActions []map[string]any `json:"systemActions"`
	}
	if err := json.Unmarshal(response, &decoded); err != nil {
		t.Fatalf("response: %v", err)
	}
	r.Cards, r.SystemActions = decoded.Cards, decoded.SystemActions
	_, r.HasActions = body["systemActions"]
	r.CoverageInfo = map[string][]CoverageInfo{}
	for _, ci := range cis {
		r.CoverageInfo[ci.Ref] = append(r.CoverageInfo[ci.Ref], ci)
	}
	return &r
}

// InScope lists the orders (order-sign, order-select) or appointments
// (appointment-book) in a request's context: a primary hook must annotate
// each of them.
func InScope(t testing.TB, request []byte) []string {
	t.Helper()
	req, err := check.Decode(request)
	if err != nil {
		t.Fatal(err)
	}
	return check.InScope(req)
}

var (
	validatorOnce sync.Once
	validator     *profiles.Validator
	validatorErr  error
)

// Validator returns the profile validator shared by every test of the
// binary (PAS 2.2.1; ForCRD for a CRD version): the registry is loaded,
// and each definition compiled, once.
func Validator(t testing.TB) *profiles.Validator {
	t.Helper()
	validatorOnce.Do(func() {
		reg, err := profiles.Load()
		if err != nil {
			validatorErr = err
			return
		}
		validator = reg.NewValidator(profiles.Options{})
	})
	if validatorErr != nil {
		t.Fatalf("load profiles: %v", validatorErr)
	}
	return validator
}

// crdPackage is the embedded CRD package version a CRD answer version
// ("2.2", "2.0") is validated against.
func crdPackage(version string) string {
	if strings.HasPrefix(version, "2.0") {
		return "2.0.1"
	}
	return "2.2.0"
}

// ValidateActions validates the resource of every system action of a CDS
// Hooks answer — the orders with their coverage-information extensions —
// against the CRD profiles of the version answered (version "2.2" or
// "2.0"), reporting each error on t. An action returns the EHR's order
// unchanged but for the extensions Priora adds, so what is checked is
// what Priora changed: errors the order as the request sent it (its
// context or prefetch) has already are not Priora's and are left out;
// for an order the request did not carry (fetched from the EHR), only
// errors inside extensions are reported.
func ValidateActions(t testing.TB, version string, request, response []byte) {
	t.Helper()
	var r struct {
		SystemActions []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"systemActions"`
	}
	if err := json.Unmarshal(response, &r); err != nil {
		return // not JSON: the response checks say so
	}
	req, _ := check.Decode(request)
	originals := check.Originals(req)
	v := Validator(t).ForCRD(crdPackage(version))
	for i, a := range r.SystemActions {
		if len(a.Resource) == 0 {
			continue
		}
		var head struct{ ResourceType, ID string }
		_ = json.Unmarshal(a.Resource, &head) // validation reports a bad resource
		before := map[string]bool{}
		orig := originals[head.ResourceType+"/"+head.ID]
		known := orig != nil
		if known {
			raw, _ := json.Marshal(orig)
			for _, is := range v.ValidateCRDResource(raw).Errors() {
				before[is.Expression+"|"+is.Diagnostics] = true
			}
		}
		for _, is := range v.ValidateCRDResource(a.Resource).Errors() {
			if before[is.Expression+"|"+is.Diagnostics] || (!known && !strings.Contains(is.Expression, "extension")) {
				continue
			}
			t.Errorf("CRD %s systemActions[%s].resource does not conform: %s %s: %s", version, strconv.Itoa(i), is.Severity, is.Expression, is.Diagnostics)
		}
	}
}
