package profiles

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	testRegOnce sync.Once
	testReg     *Registry
	testRegErr  error
)

func registry(t testing.TB) *Registry {
	t.Helper()
	testRegOnce.Do(func() { testReg, testRegErr = Load() })
	if testRegErr != nil {
		t.Fatal(testRegErr)
	}
	return testReg
}

// exampleMode says how a test file is validated: by the helper for its
// role, or by Validate (meta.profile) for everything else.
func exampleMode(v *Validator, name string) func([]byte) Result {
	switch {
	case strings.Contains(name, "nonconformant"):
		return nil
	case strings.HasPrefix(name, "response_operation_failure"), strings.HasPrefix(name, "subscription_resource"):
		return func(b []byte) Result { return v.Validate(b) }
	case strings.Contains(name, "InquiryResponseBundle"), strings.Contains(name, "inquire_response"), strings.HasPrefix(name, "response_ms_inquire"):
		return v.ValidatePASInquiryResponse
	case strings.Contains(name, "InquiryBundle"), strings.Contains(name, "inquire_request"):
		return v.ValidatePASInquiry
	case strings.Contains(name, "ResponseBundle"), strings.HasPrefix(name, "response_"), strings.Contains(name, "pa_response_bundle"):
		return v.ValidatePASResponse
	case strings.HasPrefix(name, "Bundle-") && strings.Contains(name, "AuthorizationBundle"),
		strings.HasPrefix(name, "Bundle-") && strings.Contains(name, "UpdateBundle"),
		strings.HasPrefix(name, "Bundle-") && strings.Contains(name, "RequestBundle"),
		strings.Contains(name, "submit"), strings.Contains(name, "conformant_pas_bundle"):
		return v.ValidatePASRequest
	}
	return func(b []byte) Result { return v.Validate(b) }
}

// fixtureDefects are errors the Inferno fixtures really have against the
// IG version they are validated with; each is matched by a fragment of the
// diagnostics. IG package examples get no such allowance.
var fixtureDefects = []struct{ file, fragment, reason string }{
	{"", "us-core-16", "Inferno's sample insurer/practitioner NPIs (e.g. 789312) are not 10 digits"},
	{"", "does not conform to the target profile http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-insurer", "the same short NPI, reported where it is referenced"},
	{"", "does not conform to the target profile http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-practitioner", "the same short NPI, reported where it is referenced"},
	{"response_", "Bundle.identifier: minimum required = 1", "Inferno's sample responses omit Bundle.identifier (1..1 in profile-pas-response-bundle 2.2.1)"},
	{"valid_pa_response_bundle", "Bundle.identifier: minimum required = 1", "Inferno's sample responses omit Bundle.identifier (1..1 in profile-pas-response-bundle 2.2.1)"},
	{"", "ClaimResponse.request: minimum required = 1", "Inferno's sample responses omit ClaimResponse.request (1..1 in PAS 2.2.1)"},
	{"crd-hooks", "bdl-1", "Inferno's appointment-book requests send context.appointments as a collection Bundle with total"},
	{"crd-hooks", "bdl-2", "... and with entry.search"},
}

func checkErrors(t *testing.T, file string, res Result, used map[int]bool) {
	t.Helper()
	for _, is := range res.Errors() {
		ok := false
		for i, d := range fixtureDefects {
			if strings.Contains(file, d.file) && strings.Contains(is.Diagnostics, d.fragment) {
				used[i], ok = true, true
			}
		}
		if !ok {
			t.Errorf("%s %s: %s", is.Code, is.Expression, is.Diagnostics)
		}
	}
}

// TestExamplesValidate: every example in the PAS 2.2.1 / 2.0.1 and CRD
// packages and the Inferno PAS fixtures validates without errors.
func TestExamplesValidate(t *testing.T) {
	r := registry(t)
	cases := []struct {
		dir  string
		opts Options
		crd  bool
	}{
		{"pas-2.2.1", Options{}, false},
		{"pas-2.0.1", Options{PASVersion: "2.0.1"}, false},
		{"inferno-pas", Options{}, false},
		{"crd-2.0.1", Options{CRDVersion: "2.0.1"}, true},
		{"crd-2.2.0", Options{CRDVersion: "2.2.0"}, true},
	}
	used := map[int]bool{}
	for _, c := range cases {
		v := r.NewValidator(c.opts)
		files, err := filepath.Glob(filepath.Join("testdata", c.dir, "*.json"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no files in %s", c.dir)
		}
		for _, f := range files {
			name := filepath.Base(f)
			t.Run(c.dir+"/"+name, func(t *testing.T) {
				raw, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				validate := exampleMode(v, name)
				if c.crd {
					validate = v.ValidateCRDResource
				}
				if validate == nil {
					t.Skip("a deliberately non-conformant fixture")
				}
				res := validate(raw)
				if c.dir == "inferno-pas" {
					checkErrors(t, name, res, used)
					return
				}
				for _, is := range res.Errors() {
					t.Errorf("%s %s: %s", is.Code, is.Expression, is.Diagnostics)
				}
			})
		}
	}
	t.Run("crd-hooks", func(t *testing.T) {
		v := r.NewValidator(Options{})
		files, _ := filepath.Glob("testdata/crd-hooks/*.json")
		if len(files) == 0 {
			t.Fatal("no hook fixtures")
		}
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			checkErrors(t, "crd-hooks/"+filepath.Base(f), v.ValidateCRDHookRequest(raw), used)
		}
	})
	if !t.Failed() {
		for i, d := range fixtureDefects {
			if !used[i] {
				t.Errorf("fixture defect %q (%s) no longer occurs; remove it", d.fragment, d.reason)
			}
		}
	}
}
