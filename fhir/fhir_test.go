package fhir

import (
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	b, err := DecodeBundle([]byte(`{"resourceType":"Bundle","entry":[
		{"fullUrl":"http://ehr.example/fhir/Claim/c1","resource":{"resourceType":"Claim","id":"c1"}},
		{"fullUrl":"http://ehr.example/fhir/Patient/p1","resource":{"resourceType":"Patient","id":"p1"}},
		{"fullUrl":"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0","resource":{"resourceType":"Organization","id":"o1"}},
		{"fullUrl":"http://other.example/fhir/Patient/p1","resource":{"resourceType":"Practitioner","id":"x"}}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	from := "http://ehr.example/fhir/Claim/c1"
	tests := []struct {
		ref  string
		want int
	}{
		{"http://ehr.example/fhir/Patient/p1", 1},
		{"http://ehr.example/fhir/Patient/p1/_history/3", 1},
		{"Patient/p1", 1}, // relative, against the referring entry's base
		{"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0", 2}, // urn
		{"Organization/o1", 2},                               // by type and id when no base matches
		{"Patient/nope", -1},
		{"#contained", -1},
		{"", -1},
		{"not a reference", -1},
	}
	for _, tt := range tests {
		if got := b.Resolve(tt.ref, from); got != tt.want {
			t.Errorf("Resolve(%q) = %d, want %d", tt.ref, got, tt.want)
		}
	}
}

func TestCheckFullURL(t *testing.T) {
	tests := []struct{ url, typ, id, want string }{
		{"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0", "Claim", "c1", ""},
		{"http://ehr.example/fhir/Claim/c1", "Claim", "c1", ""},
		{"", "Claim", "c1", "required"},
		{"urn:uuid:not-a-uuid", "Claim", "c1", "not a valid urn:uuid"},
		{"Claim/c1", "Claim", "c1", "absolute URL or a urn:uuid"},
		{"http://ehr.example/fhir/Claim/other", "Claim", "c1", "does not end with Claim/c1"},
		{"urn:oid:1.2.3", "Claim", "c1", "absolute URL or a urn:uuid"},
	}
	for _, tt := range tests {
		got := CheckFullURL(tt.url, tt.typ, tt.id)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("CheckFullURL(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}

func TestCheckDepth(t *testing.T) {
	deep := strings.Repeat("[", 70) + strings.Repeat("]", 70)
	if err := CheckDepth([]byte(deep), 64); err == nil || KindOf(err) != Invalid {
		t.Errorf("70 levels: %v, want Invalid", err)
	}
	// Brackets inside strings, escaped quotes included, do not count.
	str := `{"a":"` + strings.Repeat(`[\"`, 100) + `"}`
	if err := CheckDepth([]byte(str), 64); err != nil {
		t.Errorf("brackets in a string: %v", err)
	}
}

func TestParserCheck(t *testing.T) {
	p, err := NewParser()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, body, code, expr string
	}{
		{"valid", `{"resourceType":"Patient","id":"p1","gender":"female"}`, "", ""},
		{"unknown field", `{"resourceType":"Patient","colour":"blue"}`, "structure", ""},
		{"bad required code", `{"resourceType":"Patient","gender":"robot"}`, "value", ""},
		{"bad date", `{"resourceType":"Patient","birthDate":"1990-13-45"}`, "", ""},
		{"missing required", `{"resourceType":"Claim","status":"active"}`, "required", ""},
		{"not JSON", `{"resourceType":`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Check([]byte(tt.body))
			if tt.name == "valid" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if KindOf(err) != Invalid {
				t.Fatalf("Check = %v, want an Invalid error", err)
			}
			issues := IssuesOf(err)
			if len(issues) == 0 {
				t.Fatal("no issues")
			}
			if tt.code != "" {
				found := false
				for _, is := range issues {
					found = found || is.Code == tt.code
				}
				if !found {
					t.Errorf("issues %+v lack code %s", issues, tt.code)
				}
			}
		})
	}
}

func TestIssuesOfHidesInternals(t *testing.T) {
	issues := IssuesOf(&Error{Kind: Internal, Message: "mongo at 10.0.0.5 refused", Err: errString("dial tcp")})
	if len(issues) != 1 || strings.Contains(issues[0].Diagnostics, "mongo") {
		t.Errorf("internal error leaked: %+v", issues)
	}
	if oo := string(OperationOutcome(issues)); !strings.Contains(oo, `"resourceType":"OperationOutcome"`) {
		t.Errorf("OperationOutcome = %s", oo)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestParserLocations: every expression of a base R4 parse error is a
// FHIRPath to the offending element (google/fhir's proto steps removed),
// and an unknown element is named.
func TestParserLocations(t *testing.T) {
	p, err := NewParser()
	if err != nil {
		t.Fatal(err)
	}
	const bundle = `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:1","resource":%s}]}`
	tests := []struct {
		name, body string
		want       []string // expression: diagnostics fragment
	}{
		{"missing required in an entry", strings.Replace(bundle, "%s", `{"resourceType":"Coverage","status":"active","payor":[{"reference":"Organization/x"}]}`, 1),
			[]string{`Bundle.entry[0].resource: missing required field "beneficiary"`}},
		{"bad dateTime and unknown element in an entry", strings.Replace(bundle, "%s", `{"resourceType":"Claim","status":"active","created":"yesterday","foo":1,"use":"preauthorization","type":{"text":"x"},"patient":{"reference":"Patient/1"},"provider":{"reference":"Organization/1"},"priority":{"text":"x"},"insurance":[{"sequence":1,"focal":true,"coverage":{"reference":"Coverage/1"}}]}`, 1),
			[]string{"Bundle.entry[0].resource.foo: unknown element 'foo'", "Bundle.entry[0].resource.created: expected datetime"}},
		{"unknown element deep", strings.Replace(bundle, "%s", `{"resourceType":"ClaimResponse","status":"active","use":"preauthorization","type":{"text":"x"},"patient":{"reference":"Patient/1"},"created":"2020-01-01","insurer":{"reference":"Organization/1"},"outcome":"complete","item":[{"itemSequence":1,"adjudication":[{"category":{"text":"x"}}],"bogus":2,"_bogus2":{}}]}`, 1),
			[]string{"Bundle.entry[0].resource.item[0].bogus: unknown element 'bogus'", "Bundle.entry[0].resource.item[0]._bogus2: unknown element '_bogus2'"}},
		{"choice and reference are known", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1},"subject":{"reference":"Patient/1"},"colour":"blue"}`,
			[]string{"Observation.colour: unknown element 'colour'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, is := range IssuesOf(p.Check([]byte(tt.body))) {
				got = append(got, is.Expression+": "+is.Diagnostics)
			}
			for _, w := range tt.want {
				found := false
				for _, g := range got {
					found = found || strings.HasPrefix(g, w)
				}
				if !found {
					t.Errorf("no issue %q; got:\n%s", w, strings.Join(got, "\n"))
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("got %d issues, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
		})
	}
}
