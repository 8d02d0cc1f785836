// Package hookstest reports the findings of the shared CRD response
// checker (conformance/check: CDS Hooks 2.0 and Da Vinci CRD 2.2.1, 2.0.1
// in its mode) as test errors, for tests of the hooks and server packages.
package hookstest

import (
	"encoding/json"
	"testing"

	"github.com/priora/priora/conformance/check"
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
