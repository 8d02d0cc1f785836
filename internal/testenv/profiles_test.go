package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that collects Errorf messages.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// want fails t unless the first error recorded contains want, or, with
// want "", unless none was.
func (r *recorder) want(t *testing.T, want string) {
	t.Helper()
	switch {
	case want == "" && len(r.errs) > 0:
		t.Errorf("unexpected errors:\n%s", strings.Join(r.errs, "\n"))
	case want != "" && (len(r.errs) == 0 || !strings.Contains(r.errs[0], want)):
		t.Errorf("errors %q, want the first containing %q", r.errs, want)
	}
}

// wantAny is want for any error recorded, not only the first.
func (r *recorder) wantAny(t *testing.T, want string) {
	t.Helper()
	if want != "" && len(r.errs) > 0 && strings.Contains(strings.Join(r.errs, "\n"), want) {
		return
	}
	r.want(t, want)
}

func TestCheckPASResponse(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(Root(), "profiles", "testdata", "pas-2.2.1", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	response := read("Bundle-ReferralAuthorizationResponseBundleExample.json")
	request := read("Bundle-ReferralAuthorizationBundleExample.json")
	inquiry := read("Bundle-PASClaimInquiryResponseBundleExample.json")
	wrap := func(bundles ...[]byte) []byte {
		var parts []string
		for _, b := range bundles {
			parts = append(parts, `{"name":"return","resource":`+string(b)+`}`)
		}
		return []byte(`{"resourceType":"Parameters","parameter":[` + strings.Join(parts, ",") + `]}`)
	}
	tests := []struct {
		name, path string
		body       []byte
		want       string // fragment of the first error; "" for none
	}{
		// The IG's example answer names a requestor it does not include.
		{"submit response", "/fhir/Claim/$submit", response, `PAS spec-32: ClaimResponse.requestor: "PractitionerRole/ReferralPractitionerRoleExample" resolves to 0 Bundle entries`},
		{"request answered to $submit", "/fhir/Claim/$submit", request, "$submit response does not conform: error Bundle: Bundle.entry:ClaimResponse: minimum required = 1"},
		{"inquiry response", "/fhir/Claim/$inquire", wrap(inquiry), ""},
		{"no match", "/fhir/Claim/$inquire", wrap(), ""},
		{"request returned by $inquire", "/fhir/Claim/$inquire", wrap(inquiry, request), "Parameters.parameter[1].resource does not conform"},
		{"not Parameters", "/fhir/Claim/$inquire", inquiry, "not a Parameters resource"},
		{"other paths are not checked", "/fhir/Subscription", request, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			checkPASResponse(r, tt.path, tt.body)
			r.want(t, tt.want)
		})
	}
}

// TestWithReportsOnTheSubtest: a request made through e.With(sub) reports
// the failed profile check of its answer on sub, not on the test that
// started the server.
func TestWithReportsOnTheSubtest(t *testing.T) {
	bad, err := os.ReadFile(filepath.Join(Root(), "profiles", "testdata", "pas-2.2.1", "Bundle-ReferralAuthorizationBundleExample.json"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Write(bad) // a request Bundle where a response belongs
	}))
	defer srv.Close()
	parent := &recorder{TB: t}
	e := &Env{T: parent, URL: srv.URL, Client: srv.Client()}
	sub := &recorder{TB: t}
	if r := e.With(sub).Post("/fhir/Claim/$submit", []byte(`{}`)); r.Status != http.StatusOK {
		t.Fatalf("status %d", r.Status)
	}
	if len(sub.errs) == 0 || len(parent.errs) != 0 {
		t.Errorf("errors on the subtest %d, on the parent %d; want them all on the subtest", len(sub.errs), len(parent.errs))
	}
	if e.T != parent {
		t.Error("With changed the original Env")
	}
}

// TestCheckOutput: the output checks find a defect in each kind of output
// Priora gives, and pass the good ones.
func TestCheckOutput(t *testing.T) {
	fixture := func(name string) []byte { return Fixture(t, name) }
	editJSON := func(b []byte, f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
	sub := fixture("subscriptions/PAS_Subscription_example_v221_good.json")
	badSub := editJSON(sub, func(m map[string]any) { m["status"] = "sleeping" })
	searchset := func(res []byte) []byte {
		return []byte(`{"resourceType":"Bundle","type":"searchset","total":1,"link":[{"relation":"self","url":"http://x/fhir/Subscription"}],` +
			`"entry":[{"fullUrl":"http://x/fhir/Subscription/1","resource":` + string(res) + `,"search":{"mode":"match"}}]}`)
	}
	status := `{"resourceType":"Parameters","parameter":[{"name":"subscription","valueReference":{"reference":"http://x/fhir/Subscription/1"}},` +
		`{"name":"status","valueCode":"active"},{"name":"type","valueCode":"query-status"}]}`
	hook := fixture("crd/ig/CRDServiceRequest.json")
	order := func(ext any) []byte {
		var req map[string]any
		if err := json.Unmarshal(hook, &req); err != nil {
			t.Fatal(err)
		}
		res := req["context"].(map[string]any)["draftOrders"].(map[string]any)["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
		if ext != nil {
			res["extension"] = append([]any{}, ext)
		}
		out, _ := json.Marshal(map[string]any{"cards": []any{}, "systemActions": []any{map[string]any{"type": "update", "resource": res}}})
		return out
	}
	tests := []struct {
		name, method, path string
		request, body      []byte
		want               string // fragment of the first error; "" for none
	}{
		{"Subscription read", "GET", "/fhir/Subscription/1", nil, sub, ""},
		{"Subscription read, bad status", "GET", "/fhir/Subscription/1", nil, badSub, "GET Subscription does not conform"},
		{"Subscription search", "GET", "/fhir/Subscription", nil, searchset(sub), ""},
		{"Subscription search, bad entry", "GET", "/fhir/Subscription", nil, searchset(badSub), "Subscription search does not conform"},
		{"$status", "GET", "/fhir/Subscription/1/$status", nil, searchset([]byte(status)), ""},
		{"$status without type", "GET", "/fhir/Subscription/1/$status", nil, searchset([]byte(strings.Replace(status, `"type"`, `"kind"`, 1))), "has 0 type parameters"},
		{"metadata", "GET", "/fhir/metadata", nil, []byte(`{"resourceType":"CapabilityStatement","status":"active","date":"2026","kind":"instance","fhirVersion":"4.0.1","format":["json"],"implementation":{"description":"x"},"rest":[{"mode":"server"}]}`), ""},
		{"metadata without kind", "GET", "/fhir/metadata", nil, []byte(`{"resourceType":"CapabilityStatement","status":"active","date":"2026","fhirVersion":"4.0.1","format":["json"]}`), "/fhir/metadata does not conform"},
		{"review decision answered with a request", "POST", "/review/tasks/PA-1/decision", nil, fixture("pas/ig/Bundle-HomecareAuthorizationBundleExample.json"), "does not conform"},
		{"CRD order returned unchanged", "POST", "/cds-services/order-sign-crd", hook, order(nil), ""},
		{"CRD coverage-information broken", "POST", "/cds-services/order-sign-crd", hook, order(map[string]any{
			"url":       "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information",
			"extension": []any{map[string]any{"url": "covered", "valueCode": "perhaps"}},
		}), "CRD 2.2 systemActions[0].resource does not conform"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			checkOutput(r, tt.method, tt.path, "", tt.request, tt.body)
			r.want(t, tt.want)
		})
	}
}

// TestCheckNotification: a notification Priora would send passes; a
// broken one, and one carrying a broken PAS Response Bundle, do not.
func TestCheckNotification(t *testing.T) {
	handshake := Fixture(t, "subscriptions/handshake_bundle_example.json")
	event := Fixture(t, "subscriptions/PAS_notification_example_full_resource.json")
	for _, tt := range []struct {
		name string
		body []byte
		want string
	}{
		{"handshake", handshake, ""},
		{"not history", bytes.Replace(handshake, []byte(`"history"`), []byte(`"collection"`), 1), "want a history Bundle"},
		{"event whose response lacks its ClaimResponse", bytes.Replace(event, []byte(`"ClaimResponse"`), []byte(`"Basic"`), 1), "does not conform"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			CheckNotification(r, tt.body)
			r.wantAny(t, tt.want)
		})
	}
}
