package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/priora/priora/conformance/suite"
	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/profiles"
)

// TestOneValidationPath: `priora validate`, Claim/$submit and the
// conformance suite's input check run one validation (pas.CheckRequest),
// so they agree: each of these requests is refused by all three, with an
// error at the same FHIRPath.
func TestOneValidationPath(t *testing.T) {
	e := testenv.Start(t)
	reg, err := profiles.Load()
	if err != nil {
		t.Fatal(err)
	}
	v := reg.NewValidator(profiles.Options{})
	tests := []struct {
		name string
		edit func(b map[string]any)
		at   string
	}{
		{"a duplicate supportingInfo sequence", func(b map[string]any) {
			c := entry(b, 0)
			si := c["supportingInfo"].([]any)
			si[1].(map[string]any)["sequence"] = si[0].(map[string]any)["sequence"]
		}, "Bundle.entry[0].resource.supportingInfo[1].sequence"},
		{"an unresolved reference", func(b map[string]any) {
			entry(b, 0)["provider"] = map[string]any{"reference": "urn:uuid:0a2d3a57-5d35-4c84-9a34-4b1c6b0b5e11"}
		}, "Bundle.entry[0].resource.provider"},
		{"a relative fullUrl", func(b map[string]any) {
			b["entry"].([]any)[4].(map[string]any)["fullUrl"] = "Patient/SubscriberExample"
		}, "Bundle.entry[4].fullUrl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b map[string]any
			if err := json.Unmarshal(testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json"), &b); err != nil {
				t.Fatal(err)
			}
			tt.edit(b)
			body, _ := json.Marshal(b)

			// $submit
			r := e.Post("/fhir/Claim/$submit", body)
			var oo struct {
				ResourceType string
				Issue        []struct {
					Severity   string
					Expression []string
				}
			}
			_ = json.Unmarshal(r.Body, &oo)
			var submitAt []string
			for _, is := range oo.Issue {
				if is.Severity == "error" {
					submitAt = append(submitAt, is.Expression...)
				}
			}
			if r.Status != 400 || oo.ResourceType != "OperationOutcome" || !slices.Contains(submitAt, tt.at) {
				t.Errorf("$submit: %d, errors at %v, want 400 with one at %s: %s", r.Status, submitAt, tt.at, r.Body)
			}

			// priora validate
			dir := t.TempDir()
			file := filepath.Join(dir, "request.json")
			if err := os.WriteFile(file, body, 0o600); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			n, err := lintFiles(&out, v, []string{file})
			if err != nil || n == 0 {
				t.Errorf("priora validate: %d errors (%v), want the request refused:\n%s", n, err, out.String())
			}
			var cliAt []string
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				if rest, ok := strings.CutPrefix(line, file+": error "); ok {
					cliAt = append(cliAt, strings.SplitN(rest, ": ", 2)[0])
				}
			}
			if !slices.Equal(cliAt, submitAt) {
				t.Errorf("priora validate finds errors at %v, $submit at %v", cliAt, submitAt)
			}

			// the conformance suite's input check (pas-2.1.1.01 checks approval.json)
			if err := os.MkdirAll(filepath.Join(dir, "pas"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "pas", "approval.json"), body, 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := suite.Run(context.Background(), suite.Config{Base: "http://127.0.0.1:1", Inputs: dir, Registry: reg, Only: []string{"pas-2.1.1.01"}})
			if err != nil {
				t.Fatal(err)
			}
			res, _ := rep.Result("pas-2.1.1.01")
			msg := strings.Join(res.Messages, " ")
			if res.Status != suite.Skip || !strings.Contains(msg, "does not conform") || !strings.Contains(msg, tt.at+":") {
				t.Errorf("suite input check: %s %s, want it skipped naming %s", res.Status, msg, tt.at)
			}
		})
	}
}

// entry is the resource of a Bundle's i-th entry.
func entry(b map[string]any, i int) map[string]any {
	return b["entry"].([]any)[i].(map[string]any)["resource"].(map[string]any)
}
