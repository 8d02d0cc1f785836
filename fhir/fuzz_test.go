package fhir

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzBundleGate runs arbitrary bytes through the checks a request body
// passes before and during the base R4 parse — the scan (limits,
// repeated names, lone surrogates), the depth check, resourceType, the
// Bundle decode and the validating parse — none of which may panic. A
// body the scan refuses for a repeated name must really repeat one.
// Seeds: the PAS request Bundles under testdata/pas.
func FuzzBundleGate(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("..", "testdata", "pas", "*", "*.json"))
	for _, name := range seeds {
		if b, err := os.ReadFile(name); err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{},{}],"type":"collection","type":"batch"}`))
	f.Add([]byte(`{"resourceType":"Patient","id":"\ud800"}`))
	p, err := NewParser()
	if err != nil {
		f.Fatal(err)
	}
	lim := Limits{MaxDepth: 64, MaxValues: 5000, MaxArray: 500, MaxEntries: 50}
	f.Fuzz(func(t *testing.T, raw []byte) {
		serr := Scan(raw, lim)
		if serr != nil {
			if k := KindOf(serr); k != Invalid && k != TooLarge {
				t.Fatalf("Scan: kind %v: %v", k, serr)
			}
		}
		_ = CheckDepth(raw, MaxDepth)
		if _, err := ResourceType(raw); err != nil {
			return
		}
		if serr != nil || !json.Valid(raw) {
			return
		}
		_, _ = DecodeBundle(raw)
		if err := p.Check(raw); err != nil && KindOf(err) != Invalid {
			t.Fatalf("Check: kind %v: %v", KindOf(err), err)
		}
	})
}
