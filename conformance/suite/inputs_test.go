package suite_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/priora/priora/conformance/suite"
)

// TestInputsOverride: a file in --inputs replaces the default of the same
// name; the others stay. Only input checks run, so no server is needed.
func TestInputsOverride(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "pas"), 0o755); err != nil {
		t.Fatal(err)
	}
	bad := `{"resourceType":"Bundle","type":"collection","entry":[]}`
	if err := os.WriteFile(filepath.Join(dir, "pas", "denial.json"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id     string
		status suite.Status
		phrase string
	}{
		{"pas-2.1.1.01", suite.Pass, ""},                                 // default approval.json
		{"pas-2.2.1.01", suite.Skip, "pas/denial.json does not conform"}, // the tester's file
	}
	rep, err := suite.Run(context.Background(), suite.Config{Base: "http://127.0.0.1:1", Inputs: dir, Registry: registry(t),
		Only: []string{"pas-2.1.1.01", "pas-2.2.1.01"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		r, _ := rep.Result(tc.id)
		if r.Status != tc.status || !strings.Contains(strings.Join(r.Messages, " "), tc.phrase) {
			t.Errorf("%s: got %s %v, want %s mentioning %q", tc.id, r.Status, r.Messages, tc.status, tc.phrase)
		}
	}
	if _, err := suite.Run(context.Background(), suite.Config{Base: "http://x", Inputs: filepath.Join(dir, "missing")}); err == nil {
		t.Error("a missing inputs directory must be refused")
	}
}
