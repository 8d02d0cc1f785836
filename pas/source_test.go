package pas

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/priora/priora/fhir"
)

// sourceFiles are the JSON files the shared-tree readers are compared on:
// the repository's test data and, where present, the shared fixtures.
func sourceFiles(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, dir := range []string{"../testdata", "../profiles/testdata", "/work/shared/fixtures"} {
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
				return err
			}
			raw, err := os.ReadFile(path)
			if err == nil {
				out[path] = raw
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// sourceMutations are edits that take a document off the common path:
// type confusion, null, duplicate and case-folded names, leading zeros,
// surrogate escapes, fractions where integers go. Each is applied to the
// first place it fits.
var sourceMutations = [][2]string{
	{`"sequence": 1`, `"sequence": 1.0`},
	{`"sequence": 1`, `"sequence": "1"`},
	{`"sequence": 1`, `"sequence": 01`},
	{`"sequence": 1`, `"sequence": -1`},
	{`"sequence": 1`, `"sequence": 1e0`},
	{`"sequence": 1`, `"sequence": 99999999999999999999`},
	{`"sequence": 1`, `"sequence": null`},
	{`"use": "preauthorization"`, `"use": 7`},
	{`"use": "preauthorization"`, `"use": "pre\ud800auth"`},
	{`"use": "preauthorization"`, `"use": "pre\ud83d\ude00auth\u00e9"`},
	{`"use": "preauthorization"`, `"Use": "preauthorization"`},
	{`"use": "preauthorization"`, `"use": "claim", "use": "preauthorization"`},
	{`"use": "preauthorization"`, `"use": "claim", "USE": "preauthorization"`},
	{`"resourceType": "Claim"`, `"resourceType": "Claim", "resourceType": "Bundle"`},
	{`"resourceType": "Bundle"`, `"ResourceType": "Bundle"`},
	{`"resourceType": "Bundle"`, `"resourceType": ["Bundle"]`},
	{`"type": "collection"`, `"type": null`},
	{`"reference": "`, `"reference": 5, "x": "`},
	{`"reference": "`, `"contained": [{"reference": "Patient/x"}], "reference": "`},
	{`"entry": [`, `"entry": null, "entry": [`},
	{`"entry": [`, `"Entry": [{"fullUrl": "urn:x"}], "entry": [`},
	{`"value": "`, `"value": true, "v": "`},
	{`"item": [`, `"item": {}, "item2": [`},
	{`"fullUrl": "`, `"fullUrl": {"a": 1}, "f": "`},
	{`"valueDecimal": `, `"valueDecimal": "2", "x": `},
	{`"value": `, `"value": 1.5e400, "x": `},
}

// TestSourceReadsLikeEncodingJSON: intake reading the shared tree
// (newSource) decides exactly as reading the bytes with encoding/json did,
// on every test file and fixture and on edited copies of the PAS request
// examples: the same request (Bundle, Claim, items, references, parties,
// Coverage, prior Claim) or the same error.
func TestSourceReadsLikeEncodingJSON(t *testing.T) {
	files := sourceFiles(t)
	n, mutated := 0, 0
	for path, raw := range files {
		compareIntake(t, path, raw)
		n++
		if !strings.Contains(path, "pas") {
			continue
		}
		for _, m := range sourceMutations {
			if i := bytes.Index(raw, []byte(m[0])); i >= 0 {
				edited := append(append(append([]byte(nil), raw[:i]...), m[1]...), raw[i+len(m[0]):]...)
				compareIntake(t, path+" with "+m[1], edited)
				mutated++
			}
		}
	}
	if n < 50 {
		t.Fatalf("only %d files found", n)
	}
	t.Logf("%d files, %d edited copies", n, mutated)
}

func compareIntake(t *testing.T, name string, raw []byte) {
	t.Helper()
	tree, plain := newSource(raw), source{raw: raw}
	for _, want := range []string{"PAS request Bundle", "PAS inquiry Bundle"} {
		ts, terr := unwrapParameters(tree, want)
		ps, perr := unwrapParameters(plain, want)
		if !reflect.DeepEqual(terr, perr) || !bytes.Equal(ts.raw, ps.raw) {
			t.Errorf("%s: unwrap: %v %q, want %v %q", name, terr, short(ts.raw), perr, short(ps.raw))
			return
		}
		if terr != nil {
			return
		}
		if want == "PAS request Bundle" {
			tr, terr := parseRequest(ts)
			pr, perr := parseRequest(ps)
			if !reflect.DeepEqual(terr, perr) {
				t.Errorf("%s: parseRequest error %v, want %v", name, terr, perr)
				return
			}
			if terr == nil {
				tr.resolveParties()
				pr.resolveParties()
				for i := range pr.bundle.Entry {
					tr.party(i)
					pr.party(i)
					tr.references(i)
					pr.references(i)
				}
				tr.src, pr.src = source{}, source{}
				if !reflect.DeepEqual(tr, pr) {
					t.Errorf("%s: parseRequest read the tree differently", name)
				}
			}
		} else {
			tq, terr := parseInquiry(ts)
			pq, perr := parseInquiry(ps)
			if tq != nil && pq != nil {
				tq.req.src, pq.req.src = source{}, source{}
			}
			if !reflect.DeepEqual(terr, perr) || !reflect.DeepEqual(tq, pq) {
				t.Errorf("%s: parseInquiry differs: %v, want %v", name, terr, perr)
			}
		}
		// Every entry, decoded as each type intake reads, and its references.
		b, err := fhir.DecodeBundle(ps.raw)
		if err != nil {
			continue
		}
		for i, e := range b.Entry {
			if len(e.Resource) == 0 {
				continue
			}
			part := tsPart(ts, ps.raw, e.Resource)
			for _, typ := range []any{fhir.Claim{}, fhir.Coverage{}, fhir.Party{}, fhir.ClaimItem{}, fhir.Bundle{}} {
				pt := reflect.New(reflect.TypeOf(typ))
				tt := reflect.New(reflect.TypeOf(typ))
				perr := json.Unmarshal(e.Resource, pt.Interface())
				terr := ts.decode(part, tt.Interface())
				if !reflect.DeepEqual(perr, terr) || !reflect.DeepEqual(pt.Interface(), tt.Interface()) {
					t.Errorf("%s: entry %d as %T: %v, want %v", name, i, typ, terr, perr)
				}
			}
			pref, perr := fhir.References(e.Resource)
			tref, terr := ts.references(part)
			sortRefs(pref)
			sortRefs(tref)
			if !reflect.DeepEqual(perr, terr) || !reflect.DeepEqual(pref, tref) {
				t.Errorf("%s: entry %d references %v, want %v", name, i, tref, pref)
			}
		}
	}
}

// tsPart finds entry bytes in the tree source's document (the same
// offsets as in plain, the bytes being the same).
func tsPart(ts source, plain, part []byte) []byte {
	if !ts.tree.Valid() {
		return part
	}
	off := bytes.Index(plain, part)
	if off < 0 {
		return part
	}
	return ts.raw[off : off+len(part)]
}

func short(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}
