package profiles

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden-issues.json from the validator's current output")

// goldenDirs are the JSON files whose validation outcome is pinned: the
// repository's test data and, where present, the shared fixtures (IG and
// Inferno sources; their entries are checked only on machines that have
// them).
var goldenDirs = []struct{ prefix, dir string }{
	{"profiles/testdata/", "testdata"},
	{"testdata/", "../testdata"},
	{"fixtures/", "/work/shared/fixtures"},
}

// TestGoldenIssues validates every JSON file of goldenDirs the way its
// role asks (exampleMode; CDS Hooks requests with ValidateCRDHookRequest)
// and, for every resource, with Validate too, and compares a digest of
// the issues (severity, code, expression, source and diagnostics, in
// order) with testdata/golden-issues.json. Any difference fails: speed
// work on the validator (memoized reference targets, a shared decoded
// tree) must not change a single finding. Rewrite with -update-golden
// only for an intended change of findings.
func TestGoldenIssues(t *testing.T) {
	if testing.Short() {
		t.Skip("validates every test file")
	}
	// A registry of its own: the "code not validated" information issues
	// depend on what earlier validations left in the shared registry's
	// terminology cache, so this test must not see other tests' history.
	reg, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	v := reg.NewValidator(Options{})
	got := map[string]string{}
	for _, g := range goldenDirs {
		if _, err := os.Stat(g.dir); err != nil {
			continue
		}
		err := filepath.WalkDir(g.dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") || strings.HasSuffix(path, "golden-issues.json") {
				return err
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(g.dir, path)
			if d := goldenDigest(v, filepath.Base(path), raw); d != "" {
				got[g.prefix+filepath.ToSlash(rel)] = d
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	const file = "testdata/golden-issues.json"
	if *updateGolden {
		b, _ := json.MarshalIndent(got, "", " ")
		if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %d digests", len(got))
		return
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]string
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	checked := 0
	for _, name := range names {
		g, ok := got[name]
		if !ok {
			if !strings.HasPrefix(name, "fixtures/") {
				t.Errorf("%s: no longer validated", name)
			}
			continue
		}
		checked++
		if g != want[name] {
			t.Errorf("%s: issues changed: %s, want %s", name, g, want[name])
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: not in %s (run with -update-golden)", name, file)
		}
	}
	t.Logf("%d files compared", checked)
}

// goldenDigest validates raw and returns "<issues>:<sha-256 prefix>" of
// the outcome, or "" for a file that is neither a resource nor a CDS
// Hooks request.
func goldenDigest(v *Validator, name string, raw []byte) string {
	var head map[string]json.RawMessage
	if json.Unmarshal(raw, &head) != nil {
		return ""
	}
	var results []Result
	switch {
	case head["hookInstance"] != nil:
		results = append(results, v.ValidateCRDHookRequest(raw))
	case head["resourceType"] != nil:
		if f := exampleMode(v, name); f != nil {
			results = append(results, f(raw))
		}
		results = append(results, v.Validate(raw))
	default:
		return ""
	}
	h := sha256.New()
	n := 0
	for i, r := range results {
		fmt.Fprintf(h, "result %d\n", i)
		for _, is := range r.Issues {
			n++
			var line bytes.Buffer
			fmt.Fprintf(&line, "%s|%s|%s|%s|%s\n", is.Severity, is.Code, is.Expression, is.Source, is.Diagnostics)
			h.Write(line.Bytes())
		}
	}
	return fmt.Sprintf("%d:%s", n, hex.EncodeToString(h.Sum(nil))[:16])
}
