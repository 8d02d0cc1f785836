package coverage

import (
	"strings"
	"testing"
	"time"
)

func TestSampleRulesLoad(t *testing.T) {
	r, err := Sample()
	if err != nil {
		t.Fatalf("sample rules: %v", err)
	}
	if len(r.All()) < 10 {
		t.Errorf("sample has %d rules, want a realistic set", len(r.All()))
	}
}

func TestDecide(t *testing.T) {
	r, err := Sample()
	if err != nil {
		t.Fatal(err)
	}
	cpt := func(c string) []Code { return []Code{{System: CPT, Code: c}} }
	hcpcs := func(c string) []Code { return []Code{{System: HCPCS, Code: c}} }
	tests := []struct {
		name    string
		svc     Service
		action  Action
		rule    string
		after   time.Duration
		authQty float64
	}{
		{"office visit", Service{Codes: cpt("99213")}, Approve, "office-visit", 0, 0},
		{"CPT under the HCPCS system", Service{Codes: hcpcs("99212")}, Approve, "office-visit", 0, 0},
		{"HCPCS alias system", Service{Codes: []Code{{System: "https://bluebutton.cms.gov/resources/codesystem/hcpcs", Code: "E0250"}}}, Pend, "hospital-bed", 0, 0},
		{"lumbar MRI with red flag", Service{Codes: cpt("72148"), Diagnoses: []Code{{System: ICD10CM, Code: "M51.16"}}}, Approve, "mri-lumbar-red-flags", 0, 0},
		{"lumbar MRI without", Service{Codes: cpt("72148"), Diagnoses: []Code{{System: ICD10CM, Code: "M54.50"}}}, Pend, "mri-lumbar", 0, 0},
		{"home PT within limit", Service{Codes: hcpcs("G0151"), Quantity: 8}, Approve, "home-health", 0, 0},
		{"home PT over limit", Service{Codes: hcpcs("G0151"), Quantity: 20}, Modify, "home-health-pt-over-limit", 0, 12},
		{"cosmetic", Service{Codes: cpt("15780")}, Deny, "cosmetic", 0, 0},
		{"delayed approval", Service{Codes: cpt("29881")}, Pend, "knee-arthroscopy-demo", 30 * time.Second, 0},
		{"unknown code", Service{Codes: cpt("00000")}, Pend, "default", 0, 0},
		{"no codes", Service{}, Pend, "default", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := r.Decide(tt.svc)
			if out.Decision.Action != tt.action || out.RuleID() != tt.rule {
				t.Errorf("Decide = %s by %s, want %s by %s", out.Decision.Action, out.RuleID(), tt.action, tt.rule)
			}
			if out.Decision.After.Duration != tt.after {
				t.Errorf("after = %v, want %v", out.Decision.After.Duration, tt.after)
			}
			if out.Decision.AuthorizeQuantity != tt.authQty {
				t.Errorf("authorizeQuantity = %v, want %v", out.Decision.AuthorizeQuantity, tt.authQty)
			}
			if out.Reason == "" {
				t.Error("decision has no reason")
			}
		})
	}
}

func TestFirstMatchWinsAcrossIndexes(t *testing.T) {
	r, err := Parse([]byte(`
version: 1
rules:
  - id: prefix-first
    match: {codes: [{system: "http://www.ama-assn.org/go/cpt", prefixes: ["7"]}]}
    decision: {action: pend}
  - id: exact-second
    match: {codes: [{system: "http://www.ama-assn.org/go/cpt", codes: ["72148"]}]}
    decision: {action: approve}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Decide(Service{Codes: []Code{{System: CPT, Code: "72148"}}}).RuleID(); got != "prefix-first" {
		t.Errorf("rule = %s, want prefix-first (file order)", got)
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown key", "version: 1\nrules:\n  - id: a\n    mach: {}\n", "field mach not found"},
		{"bad version", "version: 2\n", "version must be 1"},
		{"no codes", "version: 1\nrules:\n  - id: a\n    decision: {action: approve}\n", "match.codes is required"},
		{"bad action", "version: 1\nrules:\n  - id: a\n    match: {codes: [{system: http://www.ama-assn.org/go/cpt, codes: [x]}]}\n    decision: {action: maybe}\n", `decision.action "maybe"`},
		{"modify without quantity", "version: 1\nrules:\n  - id: a\n    match: {codes: [{system: http://www.ama-assn.org/go/cpt, codes: [x]}]}\n    decision: {action: modify}\n", "authorizeQuantity"},
		{"deny without reason", "version: 1\nrules:\n  - id: a\n    match: {codes: [{system: http://www.ama-assn.org/go/cpt, codes: [x]}]}\n    decision: {action: deny}\n", "reasonCode or a note"},
		{"then without after", "version: 1\nrules:\n  - id: a\n    match: {codes: [{system: http://www.ama-assn.org/go/cpt, codes: [x]}]}\n    decision: {action: pend, then: approve}\n", "decision.after"},
		{"bad duration", "version: 1\nrules:\n  - id: a\n    match: {codes: [{system: http://www.ama-assn.org/go/cpt, codes: [x]}]}\n    decision: {action: pend, after: soon, then: approve}\n", "not a duration"},
		{"duplicate id", "version: 1\nrules:\n  - id: a\n    match: {codes: [{system: http://www.ama-assn.org/go/cpt, codes: [x]}]}\n    decision: {action: approve}\n  - id: a\n    match: {codes: [{system: http://www.ama-assn.org/go/cpt, codes: [y]}]}\n    decision: {action: approve}\n", "used twice"},
		{"bad crd code", "version: 1\nrules:\n  - id: a\n    match: {codes: [{system: http://www.ama-assn.org/go/cpt, codes: [x]}]}\n    decision: {action: approve}\n    crd: {paNeeded: maybe}\n", "pa-needed"},
		{"bad default", "version: 1\ndefaults: {unknownCode: modify}\n", "defaults.unknownCode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestServes(t *testing.T) {
	r, err := Parse([]byte("version: 1\npayers:\n  - {system: urn:oid:x, value: P1}\n  - {value: P2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		payers []PayerID
		want   bool
	}{
		{[]PayerID{{System: "urn:oid:x", Value: "P1"}}, true},
		{[]PayerID{{System: "urn:oid:y", Value: "P1"}}, false},
		{[]PayerID{{System: "anything", Value: "P2"}}, true},
		{nil, false},
	}
	for _, tt := range tests {
		if got := r.Serves(tt.payers); got != tt.want {
			t.Errorf("Serves(%v) = %v, want %v", tt.payers, got, tt.want)
		}
	}
}
