package hooks

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzScanners runs arbitrary bytes through the byte scanners that stand
// in for encoding/json on the CDS Hooks hot path — validJSON, the member
// and element walkers, head, the request decoder — and through the
// coverage-information splice. None may panic; validJSON must not accept
// what encoding/json refuses; a splice of a valid resource must give valid
// JSON. Seeds: the hook requests and resources under testdata/crd.
func FuzzScanners(f *testing.F) {
	for _, pat := range []string{"*/*.json", "*/*/*.json", "*/*/*/*.json"} {
		seeds, _ := filepath.Glob(filepath.Join("..", "testdata", "crd", pat))
		for _, name := range seeds {
			if b, err := os.ReadFile(name); err == nil && len(b) < 64<<10 {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(`{"resourceType":"ServiceRequest","id":"a","extension":[{"url":"http://x","valueBoolean":true}]}`))
	f.Add([]byte(`{"extension":null}`))
	ext := json.RawMessage(`{"url":"http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information","valueString":"x"}`)
	f.Fuzz(func(t *testing.T, raw []byte) {
		valid := validJSON(raw)
		if valid && !json.Valid(raw) {
			t.Fatalf("validJSON accepts what encoding/json refuses: %q", raw)
		}
		var r Request
		_ = decodeRequest(raw, &r)
		if !valid {
			return // the scanners below are only ever given valid JSON
		}
		_, _ = head(raw)
		_ = eachMember(raw, func(string, []byte) error { return nil })
		_ = eachElement(raw, func([]byte) error { return nil })
		_ = searchEntries(raw)
		var b bundle
		_ = b.read(raw)
		out, err := withExtensions(raw, "http://x", []json.RawMessage{ext})
		if err == nil && !json.Valid(out) {
			t.Fatalf("splice of %q gave invalid JSON %q", raw, out)
		}
	})
}
