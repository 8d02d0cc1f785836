package pas

import (
	"testing"

	"github.com/priora/priora/store"
)

// TestEchoSetReferences: an echoed resource brings along what it refers
// to, whether its references were read at intake (RefsKnown) or, for
// chains stored before intake kept them, are read from the resource.
func TestEchoSetReferences(t *testing.T) {
	role := `{"resourceType":"PractitionerRole","id":"r","practitioner":{"reference":"Practitioner/p"}}`
	for _, known := range []bool{true, false} {
		all := []store.EchoEntry{
			{FullURL: "http://x.org/fhir/PractitionerRole/r", Type: "PractitionerRole", Resource: role},
			{FullURL: "http://x.org/fhir/Practitioner/p", Type: "Practitioner", Resource: `{"resourceType":"Practitioner","id":"p"}`},
			{FullURL: "http://x.org/fhir/Patient/q", Type: "Patient", Resource: `{"resourceType":"Patient","id":"q"}`},
		}
		if known {
			all[0].Refs, all[0].RefsKnown = []string{"Practitioner/p"}, true
			all[1].RefsKnown, all[2].RefsKnown = true, true
		}
		s := newEchoSet(all)
		s.use(0)
		got := s.used()
		if len(got) != 2 || got[0].Type != "PractitionerRole" || got[1].Type != "Practitioner" {
			t.Errorf("refs known at intake %v: echoed %+v, want the role and its practitioner", known, got)
		}
	}
}
