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
