package profiles

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLint(t *testing.T) {
	v := registry(t).NewValidator(Options{})
	var buf bytes.Buffer
	n, err := v.Lint(&buf, []string{
		"testdata/pas-2.2.1/Bundle-ReferralAuthorizationBundleExample.json",
		"testdata/inferno-pas/nonconformant_pas_bundle_v221.json",
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("Lint found no errors in the non-conformant bundle; output:\n%s", buf.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if strings.HasPrefix(line, "testdata/pas-2.2.1/") && strings.Contains(line, ": error ") {
			t.Errorf("error reported for a valid example: %s", line)
		}
		if !strings.HasPrefix(line, "testdata/") || strings.Count(line, ": ") < 2 {
			t.Errorf("malformed line %q", line)
		}
	}
	if _, err := v.Lint(&buf, []string{"testdata/no-such-file.json"}); err == nil {
		t.Error("Lint of a missing file: want an error")
	}
}

func TestNotJSON(t *testing.T) {
	v := registry(t).NewValidator(Options{})
	got := v.Validate([]byte(`{"resourceType": "Patient",`))
	want := []Issue{{Severity: SeverityFatal, Code: "structure", Diagnostics: "invalid JSON at byte 27: expected a member name"}}
	if diff := cmp.Diff(want, got.Issues); diff != "" {
		t.Errorf("issues (-want +got):\n%s", diff)
	}
	if !got.HasErrors() {
		t.Error("HasErrors = false for a fatal issue")
	}
}

func TestOperationOutcome(t *testing.T) {
	res := Result{Issues: []Issue{{Severity: SeverityError, Code: "required", Diagnostics: "Claim.identifier: minimum required = 1, but only found 0", Expression: "Bundle.entry[0].resource"}}}
	var got map[string]any
	if err := json.Unmarshal(res.OperationOutcome(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"resourceType": "OperationOutcome", "issue": []any{map[string]any{
		"severity": "error", "code": "required",
		"diagnostics": "Claim.identifier: minimum required = 1, but only found 0",
		"expression":  []any{"Bundle.entry[0].resource"},
	}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("OperationOutcome (-want +got):\n%s", diff)
	}
}

// TestConcurrentValidation runs validations in parallel on a fresh
// registry, so that lazy compilation races are caught under -race.
func TestConcurrentValidation(t *testing.T) {
	r, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	v := r.NewValidator(Options{})
	docs := [][]byte{
		readTestdata(t, "pas-2.2.1/Bundle-ReferralAuthorizationBundleExample.json"),
		readTestdata(t, "pas-2.2.1/Bundle-SurgicalRequestBundleExample.json"),
		readTestdata(t, "pas-2.2.1/Bundle-HomecareAuthorizationBundleExample.json"),
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if res := v.ValidatePASRequest(docs[i%len(docs)]); res.HasErrors() {
				t.Errorf("doc %d: %v", i%len(docs), res.Errors())
			}
		}(i)
	}
	wg.Wait()
}

func TestKnownIGDefectsHaveReasons(t *testing.T) {
	for _, d := range KnownIGDefects() {
		if d.Extension == "" || d.Context == "" || len(d.Reason) < 20 {
			t.Errorf("incomplete defect entry %+v", d)
		}
		if !registry(t).HasProfile(d.Extension) {
			t.Errorf("defect names an extension that is not embedded: %s", d.Extension)
		}
	}
}

func TestLintProfile(t *testing.T) {
	v := registry(t).NewValidator(Options{})
	var buf bytes.Buffer
	// A request Bundle forced through the response profile must fail; the
	// same file against its own profile must not.
	file := "testdata/pas-2.2.1/Bundle-ReferralAuthorizationBundleExample.json"
	n, err := v.LintProfile(&buf, []string{file}, PASResponseBundle)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || !strings.Contains(buf.String(), file+": error Bundle: Bundle.entry:ClaimResponse: minimum required = 1") {
		t.Errorf("LintProfile(response) = %d errors; output:\n%s", n, buf.String())
	}
	buf.Reset()
	if n, err := v.LintProfile(&buf, []string{file}, PASRequestBundle+"|2.2.1"); err != nil || n != 0 {
		t.Errorf("LintProfile(request) = %d, %v; output:\n%s", n, err, buf.String())
	}
}
