package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMembersCommand(t *testing.T) {
	dir := t.TempDir()
	getenv := env(map[string]string{"PRIORA_DATA_DIR": dir})
	bad := filepath.Join(t.TempDir(), "bad.ndjson")
	if err := os.WriteFile(bad, []byte(`{"resourceType":"Patient","id":"x","name":[{"family":"X"}],"birthDate":"1990-01-01"}
{"resourceType":"Coverage","status":"active","subscriberId":"X-1","beneficiary":{"reference":"Patient/x"},"payor":[{"identifier":{"value":"P"}}]}
{"resourceType":"Coverage","status":"someday","subscriberId":"X-2","beneficiary":{"reference":"Patient/x"},"payor":[{"identifier":{"value":"P"}}]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	roster := filepath.Join("..", "..", "testdata", "members", "roster.ndjson")
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" = success; "usage" = errUsage
		out     string
	}{
		{"import", []string{"import", roster}, "", "13 resources read: 5 coverage(s) created, 1 updated, 0 unchanged, 0 bad"},
		{"import again", []string{"import", roster}, "", "0 coverage(s) created, 0 updated, 6 unchanged"},
		{"show by bare id", []string{"show", "1122334455"}, "", `"family": "SMITH"`},
		{"show by system|value", []string{"show", "https://maryland-capital.example.org/member-id|MCD-5550123"}, "", `"plan": "MCI-MCD-PLUS"`},
		{"show unknown", []string{"show", "NOBODY"}, "no member NOBODY", ""},
		{"all or nothing", []string{"import", "--all-or-nothing", bad}, "nothing imported", "0 coverage(s) created"},
		{"after all or nothing", []string{"show", "X-1"}, "no member X-1", ""},
		{"bad entries skipped", []string{"import", bad}, "1 bad entr", "1 coverage(s) created"},
		{"missing file", []string{"import", filepath.Join(dir, "none.ndjson")}, "no such file", ""},
		{"no file", []string{"import"}, "usage", ""},
		{"unknown subcommand", []string{"purge"}, "usage", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := membersCmd(context.Background(), tt.args, getenv, &stdout, &stderr)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v\n%s", err, stderr.String())
			case tt.wantErr == "usage" && !errors.Is(err, errUsage):
				t.Fatalf("error %v, want the usage error", err)
			case tt.wantErr != "" && tt.wantErr != "usage" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
			}
			if !strings.Contains(stdout.String(), tt.out) {
				t.Errorf("output %q lacks %q", stdout.String(), tt.out)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	_ = membersCmd(context.Background(), []string{"import", bad}, getenv, &stdout, &stderr)
	if !strings.Contains(stderr.String(), "bad.ndjson:3: Coverage.status: status must be") {
		t.Errorf("bad entry report: %q", stderr.String())
	}
}
