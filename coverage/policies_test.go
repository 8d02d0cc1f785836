package coverage_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	. "github.com/priora/priora/coverage"
	"github.com/priora/priora/pas"
)

var update = flag.Bool("update", false, "rewrite testdata/policies from the example table")

// The sample policies' example requests: for every policy, one request
// whose criteria are all met, one where they are not met and one where
// their data is absent. TestSamplePolicyExamples writes them (with -update)
// to testdata/policies as PAS request Bundles built on the PAS IG's
// medical-services example, with examples.json saying how each must be
// decided; the server tests submit the same files over HTTP.

type docs []string // LOINC types of attached DocumentReferences

type answer struct {
	linkID string
	value  any // bool, int, string (date)
}

type example struct {
	Policy   string             `json:"policy"`
	Name     string             `json:"name"`
	File     string             `json:"file"`
	Action   Action             `json:"action"`
	Findings map[string]Finding `json:"findings"`
	// RequestInfo are the LOINC codes a pend must ask for.
	RequestInfo []string `json:"requestInfo,omitempty"`

	code      Code
	pos       string
	quantity  float64
	dx        []string // ICD-10-CM; the first is linked to the item
	unlinked  bool     // no diagnosisSequence on the item
	qr        string   // questionnaire canonical
	answers   []answer
	docs      docs
	specialty string
	birthDate string
	gender    string
}

const qBase = "http://priora.example.org/fhir/Questionnaire/"

// examplesToday is the date the examples are decided on (their dates are
// relative to it): `priora rules test --today 2026-12-01`.
var examplesToday = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func policyExamples() []example {
	hcpcs := func(c string) Code { return Code{System: HCPCS, Code: c} }
	cpt := func(c string) Code { return Code{System: CPT, Code: c} }
	m := func(kv ...string) map[string]Finding {
		out := map[string]Finding{}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = Finding(kv[i+1])
		}
		return out
	}
	adult, child := "1958-04-12", "2015-06-01"
	recent, old := "2026-11-10", "2026-05-01" // against ExamplesToday
	return []example{
		{Policy: "cpap-osa", Name: "met", Action: Approve, code: hcpcs("E0601"), dx: []string{"G47.33"}, birthDate: adult,
			qr: qBase + "cpap-osa", answers: []answer{{"ahi", 22}, {"symptoms", false}}, docs: docs{"28633-6"},
			Findings: m("adult", "met", "osa-diagnosis", "met", "ahi-15", "met", "ahi-5", "met", "osa-symptoms", "not-met", "sleep-study-report", "met")},
		{Policy: "cpap-osa", Name: "met-mild-with-symptoms", Action: Approve, code: hcpcs("E0601"), dx: []string{"G47.33"}, birthDate: adult,
			qr: qBase + "cpap-osa", answers: []answer{{"ahi", 9}, {"symptoms", true}}, docs: docs{"28633-6"},
			Findings: m("ahi-15", "not-met", "ahi-5", "met", "osa-symptoms", "met")},
		{Policy: "cpap-osa", Name: "not-met", Action: Pend, code: hcpcs("E0601"), dx: []string{"G47.30", "G47.33"}, birthDate: child,
			qr: qBase + "cpap-osa", answers: []answer{{"ahi", 3}, {"symptoms", false}}, docs: docs{"11506-3"},
			Findings: m("adult", "not-met", "osa-diagnosis", "not-met", "ahi-15", "not-met", "ahi-5", "not-met", "osa-symptoms", "not-met", "sleep-study-report", "not-met")},
		{Policy: "cpap-osa", Name: "unknown", Action: Pend, code: hcpcs("E0601"), dx: []string{"G47.33"}, unlinked: true, birthDate: adult,
			Findings:    m("adult", "met", "osa-diagnosis", "unknown", "ahi-15", "unknown", "ahi-5", "unknown", "osa-symptoms", "unknown", "sleep-study-report", "unknown"),
			RequestInfo: []string{"28633-6", "11506-3"}},

		{Policy: "polysomnography", Name: "met", Action: Approve, code: cpt("95810"), pos: "49", birthDate: adult,
			qr: qBase + "sleep-testing", answers: []answer{{"osa-signs", true}},
			Findings: m("osa-signs", "met", "sleep-facility", "met", "once-a-year", "met")},
		{Policy: "polysomnography", Name: "not-met", Action: Pend, code: cpt("95810"), pos: "12", birthDate: adult,
			qr: qBase + "sleep-testing", answers: []answer{{"osa-signs", false}},
			Findings: m("osa-signs", "not-met", "sleep-facility", "not-met", "once-a-year", "met")},
		{Policy: "polysomnography", Name: "unknown", Action: Pend, code: cpt("95811"), birthDate: adult,
			Findings: m("osa-signs", "unknown", "sleep-facility", "met", "once-a-year", "met"), RequestInfo: []string{"11488-4"}},

		{Policy: "mri-lumbar", Name: "met", Action: Approve, code: cpt("72148"), dx: []string{"M54.50"}, birthDate: adult,
			qr: qBase + "imaging-lumbar-mri", answers: []answer{{"conservative-weeks", 8}}, docs: docs{"11506-3"},
			Findings: m("low-back-pain", "met", "conservative-therapy", "met", "progress-note", "met")},
		{Policy: "mri-lumbar", Name: "not-met", Action: Pend, code: cpt("72148"), dx: []string{"M25.561"}, birthDate: adult,
			qr: qBase + "imaging-lumbar-mri", answers: []answer{{"conservative-weeks", 2}}, docs: docs{"18748-4"},
			Findings: m("low-back-pain", "not-met", "conservative-therapy", "not-met", "progress-note", "not-met")},
		{Policy: "mri-lumbar", Name: "unknown", Action: Pend, code: cpt("72148"), birthDate: adult,
			Findings: m("low-back-pain", "unknown", "conservative-therapy", "unknown", "progress-note", "unknown"), RequestInfo: []string{"11506-3"}},

		{Policy: "knee-arthroscopy", Name: "met", Action: Approve, code: cpt("29877"), dx: []string{"M23.205"}, birthDate: adult,
			qr: qBase + "knee-arthroscopy", answers: []answer{{"mechanical-symptoms", true}, {"outerbridge-grade", 2}}, docs: docs{"18748-4"},
			Findings: m("mechanical-symptoms", "met", "severe-oa", "not-met", "knee-imaging", "met")},
		{Policy: "knee-arthroscopy", Name: "not-met", Action: Pend, code: cpt("29877"), dx: []string{"M17.11"}, birthDate: adult,
			qr: qBase + "knee-arthroscopy", answers: []answer{{"mechanical-symptoms", false}, {"outerbridge-grade", 4}}, docs: docs{"11506-3"},
			Findings: m("mechanical-symptoms", "not-met", "severe-oa", "met", "knee-imaging", "not-met")},
		{Policy: "knee-arthroscopy", Name: "unknown", Action: Pend, code: hcpcs("G0289"), birthDate: adult,
			Findings: m("mechanical-symptoms", "unknown", "severe-oa", "unknown", "knee-imaging", "unknown"), RequestInfo: []string{"11488-4", "18748-4"}},

		{Policy: "home-health-skilled-nursing", Name: "met", Action: Approve, code: hcpcs("G0299"), quantity: 12, birthDate: adult,
			qr: qBase + "home-health", answers: []answer{{"homebound", true}, {"face-to-face-date", recent}}, docs: docs{"18776-5"},
			Findings: m("homebound", "met", "face-to-face", "met", "plan-of-care", "met", "visit-cap", "met")},
		{Policy: "home-health-skilled-nursing", Name: "not-met", Action: Pend, code: hcpcs("G0299"), quantity: 45, birthDate: adult,
			qr: qBase + "home-health", answers: []answer{{"homebound", false}, {"face-to-face-date", old}}, docs: docs{"11506-3"},
			Findings: m("homebound", "not-met", "face-to-face", "not-met", "plan-of-care", "not-met", "visit-cap", "not-met")},
		{Policy: "home-health-skilled-nursing", Name: "unknown", Action: Pend, code: hcpcs("G0300"), quantity: 10, birthDate: adult,
			Findings: m("homebound", "unknown", "face-to-face", "unknown", "plan-of-care", "unknown", "visit-cap", "met"), RequestInfo: []string{"34117-2", "18776-5"}},

		{Policy: "power-mobility", Name: "met", Action: Approve, code: hcpcs("K0823"), birthDate: adult,
			qr: qBase + "power-mobility", answers: []answer{{"mradl-impaired", true}, {"walker-insufficient", true}}, docs: docs{"34117-2"},
			Findings: m("mradl-impaired", "met", "walker-insufficient", "met", "mobility-exam", "met")},
		{Policy: "power-mobility", Name: "not-met", Action: Pend, code: hcpcs("K0823"), birthDate: adult,
			qr: qBase + "power-mobility", answers: []answer{{"mradl-impaired", false}, {"walker-insufficient", false}}, docs: docs{"11506-3"},
			Findings: m("mradl-impaired", "not-met", "walker-insufficient", "not-met", "mobility-exam", "not-met")},
		{Policy: "power-mobility", Name: "unknown", Action: Pend, code: hcpcs("K0825"), birthDate: adult,
			Findings: m("mradl-impaired", "unknown", "walker-insufficient", "unknown", "mobility-exam", "unknown"), RequestInfo: []string{"34117-2"}},

		{Policy: "ngs-advanced-cancer", Name: "met", Action: Approve, code: cpt("81445"), dx: []string{"C34.90", "C79.51"}, birthDate: adult,
			qr: qBase + "ngs", answers: []answer{{"tested-before", false}, {"seeks-treatment", true}},
			Findings: m("metastatic", "met", "advanced-stage", "unknown", "not-tested-before", "met", "seeks-treatment", "met")},
		{Policy: "ngs-advanced-cancer", Name: "not-met", Action: Pend, code: cpt("81445"), dx: []string{"C34.90"}, birthDate: adult,
			qr: qBase + "ngs", answers: []answer{{"advanced", false}, {"tested-before", true}, {"seeks-treatment", false}},
			Findings: m("metastatic", "not-met", "advanced-stage", "not-met", "not-tested-before", "not-met", "seeks-treatment", "not-met")},
		{Policy: "ngs-advanced-cancer", Name: "unknown", Action: Pend, code: cpt("81455"), birthDate: adult,
			Findings:    m("metastatic", "unknown", "advanced-stage", "unknown", "not-tested-before", "unknown", "seeks-treatment", "unknown"),
			RequestInfo: []string{"11488-4", "51969-4"}},

		{Policy: "adalimumab-step-therapy", Name: "met", Action: Approve, code: hcpcs("J0135"), dx: []string{"M06.9"}, birthDate: adult,
			qr: qBase + "biologic-step-therapy", answers: []answer{{"methotrexate-weeks", 16}}, specialty: "207RR0500X",
			Findings: m("ra-diagnosis", "met", "methotrexate-trial", "met", "rheumatologist", "met")},
		{Policy: "adalimumab-step-therapy", Name: "not-met", Action: Pend, code: hcpcs("J0135"), dx: []string{"L40.50"}, birthDate: adult,
			qr: qBase + "biologic-step-therapy", answers: []answer{{"methotrexate-weeks", 4}}, specialty: "207Q00000X",
			Findings: m("ra-diagnosis", "not-met", "methotrexate-trial", "not-met", "rheumatologist", "not-met")},
		{Policy: "adalimumab-step-therapy", Name: "unknown", Action: Pend, code: hcpcs("J0135"), birthDate: adult,
			Findings: m("ra-diagnosis", "unknown", "methotrexate-trial", "unknown", "rheumatologist", "unknown"), RequestInfo: []string{"10160-0"}},

		{Policy: "screening-mammography", Name: "met", Action: Approve, code: cpt("77067"), birthDate: adult, gender: "female",
			Findings: m("female", "met", "age-40", "met", "every-11-months", "met")},
		{Policy: "screening-mammography", Name: "not-met", Action: Deny, code: cpt("77067"), birthDate: "1995-02-03", gender: "male",
			Findings: m("female", "not-met", "age-40", "not-met", "every-11-months", "met")},
		{Policy: "screening-mammography", Name: "unknown", Action: Pend, code: cpt("77067"), gender: "female", birthDate: "-",
			Findings: m("female", "met", "age-40", "unknown", "every-11-months", "met")},
	}
}

// bundle builds the example's PAS request Bundle on the IG example.
func (ex example) bundle(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile("../testdata/pas/ig/Bundle-MedicalServicesAuthorizationBundleExample.json")
	if err != nil {
		t.Fatal(err)
	}
	var b map[string]any
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	id := ex.Policy + "-" + ex.Name
	b["identifier"] = map[string]any{"system": "http://example.org/SUBMITTER_TRANSACTION_IDENTIFIER", "value": "policy-" + id}
	entries := b["entry"].([]any)
	claim := entries[0].(map[string]any)["resource"].(map[string]any)
	claim["identifier"].([]any)[0].(map[string]any)["value"] = "trace-" + id
	item := claim["item"].([]any)[0].(map[string]any)
	item["productOrService"] = map[string]any{"coding": []any{map[string]any{"system": ex.code.System, "code": ex.code.Code}}}
	switch ex.pos {
	case "":
	case "-":
		delete(item, "locationCodeableConcept")
	default:
		item["locationCodeableConcept"] = map[string]any{"coding": []any{map[string]any{
			"system": "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set", "code": ex.pos}}}
	}
	if ex.quantity > 0 {
		item["quantity"] = map[string]any{"value": ex.quantity}
	}
	var dx []any
	for i, code := range ex.dx {
		dx = append(dx, map[string]any{"sequence": i + 1, "diagnosisCodeableConcept": map[string]any{
			"coding": []any{map[string]any{"system": ICD10CM, "code": code}}}})
	}
	if len(dx) > 0 {
		claim["diagnosis"] = dx
		if !ex.unlinked {
			item["diagnosisSequence"] = []any{len(ex.dx)}
			if ex.Policy == "cpap-osa" {
				item["diagnosisSequence"] = []any{1}
			}
		}
	}
	var support []any
	addEntry := func(fullURL string, res map[string]any) {
		entries = append(entries, map[string]any{"fullUrl": fullURL, "resource": res})
		support = append(support, map[string]any{"sequence": len(support) + 1,
			"extension": []any{map[string]any{"url": "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-documentInformation",
				"extension": []any{
					map[string]any{"url": "reportTypeCode", "valueCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": "https://codesystem.x12.org/005010/755", "code": "PY", "display": "Physician's Report"}}}},
					map[string]any{"url": "transmissionMethod", "valueCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": "https://codesystem.x12.org/005010/756", "code": "EL", "display": "Electronically Only"}}}}}}},
			"category":       map[string]any{"coding": []any{map[string]any{"system": "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes", "code": "additionalInformation"}}},
			"valueReference": map[string]any{"reference": fullURL}})
	}
	if ex.qr != "" {
		var items []any
		for _, a := range ex.answers {
			v := map[string]any{}
			switch x := a.value.(type) {
			case bool:
				v["valueBoolean"] = x
			case int:
				v["valueInteger"] = x
			case string:
				v["valueDate"] = x
			}
			items = append(items, map[string]any{"linkId": a.linkID, "answer": []any{v}})
		}
		addEntry("http://example.org/fhir/QuestionnaireResponse/"+id, map[string]any{
			"resourceType": "QuestionnaireResponse", "id": id,
			"meta":          map[string]any{"profile": []any{"http://hl7.org/fhir/us/core/StructureDefinition/us-core-questionnaireresponse"}},
			"questionnaire": ex.qr, "status": "completed", "subject": map[string]any{"reference": "Patient/SubscriberExample"},
			"authored": "2026-11-30T10:00:00Z", "item": items})
	}
	for i, loinc := range ex.docs {
		did := fmt.Sprintf("%s-doc%d", id, i+1)
		addEntry("http://example.org/fhir/DocumentReference/"+did, map[string]any{
			"resourceType": "DocumentReference", "id": did,
			"meta":   map[string]any{"profile": []any{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-documentreference"}},
			"status": "current", "type": map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": loinc}}},
			"category": []any{map[string]any{"coding": []any{map[string]any{"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category", "code": "clinical-note"}}}},
			"subject":  map[string]any{"reference": "Patient/SubscriberExample"},
			"date":     "2026-11-30T10:00:00Z",
			"content":  []any{map[string]any{"attachment": map[string]any{"contentType": "text/plain", "data": "U2FtcGxlIGRvY3VtZW50Lg=="}}}})
	}
	if len(support) > 0 {
		claim["supportingInfo"] = support
	}
	if ex.specialty != "" {
		claim["careTeam"] = []any{map[string]any{"sequence": 1, "provider": map[string]any{"reference": "Organization/UMOExample"},
			"extension":     []any{map[string]any{"url": "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-careTeamClaimScope", "valueBoolean": true}},
			"qualification": map[string]any{"coding": []any{map[string]any{"system": "http://nucc.org/provider-taxonomy", "code": ex.specialty}}}}}
	}
	for _, en := range entries {
		res := en.(map[string]any)["resource"].(map[string]any)
		// Each example is its own member, so that frequency limits count
		// only what a test submits twice on purpose.
		member := fmt.Sprintf("9%010d", crc32.ChecksumIEEE([]byte(id)))
		if res["resourceType"] == "Coverage" {
			res["subscriberId"] = member
		}
		if res["resourceType"] == "Patient" {
			res["identifier"] = []any{map[string]any{"system": "http://example.org/MIN", "value": member}}
			switch ex.birthDate {
			case "-":
				delete(res, "birthDate")
			case "":
			default:
				res["birthDate"] = ex.birthDate
			}
			if ex.gender != "" {
				res["gender"] = ex.gender
			}
		}
	}
	b["entry"] = entries
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

const policiesDir = "../testdata/policies"

func TestSamplePolicyExamples(t *testing.T) {
	rules, err := Sample()
	if err != nil {
		t.Fatal(err)
	}
	exs := policyExamples()
	if *update {
		if err := os.MkdirAll(policiesDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range exs {
			exs[i].File = exs[i].Policy + "-" + exs[i].Name + ".json"
			if err := os.WriteFile(filepath.Join(policiesDir, exs[i].File), exs[i].bundle(t), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		manifest, _ := json.MarshalIndent(exs, "", "  ")
		if err := os.WriteFile(filepath.Join(policiesDir, "examples.json"), append(manifest, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stored, err := loadExamples()
	if err != nil {
		t.Fatalf("%v (run go test ./coverage -run TestSamplePolicyExamples -update)", err)
	}
	if len(stored) != len(exs) {
		t.Fatalf("%d stored examples, the table has %d: run with -update", len(stored), len(exs))
	}
	covered := map[string]map[Finding]bool{}
	for _, ex := range stored {
		t.Run(ex.Policy+"/"+ex.Name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(policiesDir, ex.File))
			if err != nil {
				t.Fatal(err)
			}
			items, err := pas.Preview(rules, raw, examplesToday, func() ([]Prior, bool, error) { return nil, true, nil })
			if err != nil {
				t.Fatal(err)
			}
			out := items[0].Outcome
			if out.RuleID() != ex.Policy {
				t.Fatalf("rule %s, want %s (%s)", out.RuleID(), ex.Policy, out.Reason)
			}
			if out.Decision.Action != ex.Action {
				t.Errorf("action %s, want %s\n%s", out.Decision.Action, ex.Action, Explain(out.Criteria))
			}
			for _, c := range out.Criteria {
				if covered[ex.Policy] == nil {
					covered[ex.Policy] = map[Finding]bool{}
				}
				covered[ex.Policy][c.Finding] = true
				if want, ok := ex.Findings[c.ID]; ok && want != c.Finding {
					t.Errorf("criterion %s: %s, want %s (evidence %v, %s)", c.ID, c.Finding, want, c.Evidence, c.Detail)
				}
				if c.Finding != Unknown && c.Detail == "" && len(c.Evidence) == 0 {
					t.Errorf("criterion %s: %s without evidence", c.ID, c.Finding)
				}
			}
			for _, code := range ex.RequestInfo {
				if !slices.Contains(out.Decision.RequestInfo, code) {
					t.Errorf("requestInfo %v lacks %s", out.Decision.RequestInfo, code)
				}
			}
		})
	}
	for policy, f := range covered {
		for _, want := range []Finding{Met, NotMet, Unknown} {
			if !f[want] {
				t.Errorf("%s: no example has a criterion %s", policy, want)
			}
		}
	}
	if len(covered) < 8 {
		t.Errorf("%d policies with examples, want at least 8", len(covered))
	}
}

func loadExamples() ([]example, error) {
	b, err := os.ReadFile(filepath.Join(policiesDir, "examples.json"))
	if err != nil {
		return nil, err
	}
	var exs []example
	return exs, json.Unmarshal(b, &exs)
}
