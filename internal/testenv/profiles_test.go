package testenv

import (
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
			switch {
			case tt.want == "" && len(r.errs) > 0:
				t.Errorf("unexpected errors:\n%s", strings.Join(r.errs, "\n"))
			case tt.want != "" && (len(r.errs) == 0 || !strings.Contains(r.errs[0], tt.want)):
				t.Errorf("errors %q, want one containing %q", r.errs, tt.want)
			}
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
