package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateCommand(t *testing.T) {
	good, err := os.ReadFile("../../testdata/pas/ig/Bundle-ReferralAuthorizationBundleExample.json")
	if err != nil {
		t.Fatal(err)
	}
	// The bad file drops Claim.item[0].category, which PAS requires.
	var m map[string]any
	if err := json.Unmarshal(good, &m); err != nil {
		t.Fatal(err)
	}
	claim := m["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
	delete(claim["item"].([]any)[0].(map[string]any), "category")
	bad, _ := json.Marshal(m)

	dir := t.TempDir()
	goodFile, badFile := filepath.Join(dir, "good.json"), filepath.Join(dir, "bad.json")
	for f, b := range map[string][]byte{goodFile: good, badFile: bad} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// What Claim/$submit refuses beyond the profiles, which the command
	// must refuse too: a duplicate supportingInfo sequence, an unresolved
	// reference, a relative fullUrl.
	variant := func(name string, f func(m map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		p := filepath.Join(dir, name+".json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	claimOf := func(m map[string]any) map[string]any {
		return m["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
	}
	dupSeq := variant("dup-seq", func(m map[string]any) {
		c := claimOf(m)
		si := c["supportingInfo"].([]any)
		c["supportingInfo"] = append(si, si[0])
	})
	unresolved := variant("unresolved", func(m map[string]any) {
		claimOf(m)["patient"] = map[string]any{"reference": "Patient/nobody-here"}
	})
	relative := variant("relative", func(m map[string]any) {
		m["entry"].([]any)[1].(map[string]any)["fullUrl"] = "Organization/UMOExample"
	})
	const response = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-pas-response-bundle"
	cases := []struct {
		name    string
		args    []string
		wantErr error    // nil, errInvalid or errUsage
		want    []string // fragments of stdout lines
	}{
		{"valid request", []string{goodFile}, nil, nil},
		{"missing category", []string{goodFile, badFile}, errInvalid, []string{
			badFile + ": error Bundle.entry[0].resource.item[0]: Claim.item.category: minimum required = 1",
		}},
		{"forced profile", []string{"--profile", response, goodFile}, errInvalid, []string{
			goodFile + ": error Bundle: Bundle.entry:ClaimResponse: minimum required = 1",
		}},
		{"duplicate supportingInfo sequence", []string{dupSeq}, errInvalid, []string{dupSeq + ": error Bundle.entry[0].resource.supportingInfo"}},
		{"unresolved reference", []string{unresolved}, errInvalid, []string{unresolved + ": error Bundle.entry[0].resource.patient"}},
		{"relative fullUrl", []string{relative}, errInvalid, []string{relative + ": error Bundle.entry[1].fullUrl"}},
		{"no files", nil, errUsage, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"validate"}, c.args...), func(string) string { return "" }, &stdout, &stderr)
			if !errors.Is(err, c.wantErr) {
				t.Errorf("run = %v, want %v; stderr:\n%s", err, c.wantErr, stderr.String())
			}
			out := stdout.String()
			if c.wantErr == nil && strings.Contains(out, ": error ") {
				t.Errorf("errors printed for a valid file:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q; got:\n%s", w, out)
				}
			}
		})
	}
	t.Run("unreadable file", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"validate", filepath.Join(dir, "missing.json")}, func(string) string { return "" }, &stdout, &stderr)
		if err == nil || errors.Is(err, errInvalid) {
			t.Errorf("run = %v, want a read error", err)
		}
	})
}
