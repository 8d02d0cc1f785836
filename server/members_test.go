package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/priora/priora/coverage"
	"github.com/priora/priora/hooks/hookstest"
	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/members"
)

const (
	joeID    = "https://maryland-capital.example.org/member-id|1122334455"
	homecare = "pas/ig/Bundle-HomecareAuthorizationBundleExample.json"
	kitOK    = "pas/kit/approval_pa_submit_request_payload.json"
	ndjsonCT = "application/fhir+ndjson"
	hcpcs    = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
)

// planRules approve the homecare example's items under one plan only, so a
// test sees which plan the decision used.
const planRules = `
version: 1
rules:
  - id: medicaid-plus-home-care
    match: {codes: [{system: "` + hcpcs + `", codes: [G0154, B4184]}], plans: [MCI-MCD-PLUS]}
    decision: {action: approve}
  - id: home-care
    match: {codes: [{system: "` + hcpcs + `", codes: [G0154, B4184]}]}
    decision: {action: pend}
`

func sampleRoster(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../testdata/members/roster.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type importReport struct {
	Resources, Created, Updated, Unchanged int
	Written                                bool
	Errors                                 []struct {
		Source, Expression, Reason string
		Line                       int
		Entry                      *int
	}
}

func importRoster(t *testing.T, e *testenv.Env, body []byte, ct string, query string) importReport {
	t.Helper()
	r := e.Post("/admin/members"+query, body, "Content-Type", ct)
	if r.Status != http.StatusOK {
		t.Fatalf("import: %d %s", r.Status, r.Body)
	}
	var rep importReport
	if err := json.Unmarshal(r.Body, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestMembersImport(t *testing.T) {
	e := testenv.Start(t)
	roster := sampleRoster(t)
	rep := importRoster(t, e, roster, ndjsonCT, "")
	if rep.Resources != 13 || rep.Created != 5 || rep.Updated != 1 || rep.Unchanged != 0 || len(rep.Errors) != 0 || !rep.Written {
		t.Errorf("first import: %+v", rep)
	}
	rep = importRoster(t, e, roster, ndjsonCT, "")
	if rep.Created != 0 || rep.Updated != 0 || rep.Unchanged != 6 || len(rep.Errors) != 0 {
		t.Errorf("re-import changed something: %+v", rep)
	}

	r := e.Get("/admin/members/" + url.PathEscape(joeID))
	if r.Status != http.StatusOK {
		t.Fatalf("show: %d %s", r.Status, r.Body)
	}
	var m struct {
		MemberID, SubscriberID, Relationship, Family, BirthDate string
		Coverages                                               []struct{ Plan, ProductLine, PayerID, Start, Status string }
	}
	_ = json.Unmarshal(r.Body, &m)
	if m.MemberID != "1122334455" || m.Relationship != "self" || m.Family != "SMITH" || m.BirthDate != "1961-04-12" ||
		len(m.Coverages) != 1 || m.Coverages[0].Plan != "MCI-PPO-GOLD" || m.Coverages[0].PayerID != "1234567893" || m.Coverages[0].ProductLine != "Commercial" {
		t.Errorf("member: %s", r.Body)
	}
	if r := e.Get("/admin/members/MCD-5550123"); r.Status != http.StatusOK || strings.Count(string(r.Body), `"plan"`) != 2 {
		t.Errorf("by bare id, two coverage periods: %d %s", r.Status, r.Body)
	}
	if r := e.Get("/admin/members/NOBODY"); r.Status != http.StatusNotFound || !strings.Contains(string(r.Body), "OperationOutcome") {
		t.Errorf("unknown member: %d %s", r.Status, r.Body)
	}

	// A Bundle: streamed entry by entry; bad entries are reported with
	// their index, FHIRPath and reason, and the good ones imported.
	bundle := `{"resourceType":"Bundle","type":"collection","entry":[
	 {"fullUrl":"urn:uuid:p1","resource":{"resourceType":"Patient","name":[{"family":"DOE","given":["ANN"]}],"birthDate":"1990-05-05"}},
	 {"fullUrl":"urn:uuid:c1","resource":{"resourceType":"Coverage","status":"active","subscriberId":"B-1","beneficiary":{"reference":"urn:uuid:p1"},
	   "payor":[{"identifier":{"system":"http://hl7.org/fhir/sid/us-npi","value":"1234567893"}}],"period":{"start":"2026-01-01"}}},
	 {"fullUrl":"urn:uuid:p2","resource":{"resourceType":"Patient","name":[{"family":"ROE"}]}},
	 {"fullUrl":"urn:uuid:c2","resource":{"resourceType":"Coverage","status":"bogus","subscriberId":"B-2","beneficiary":{"reference":"urn:uuid:p1"},
	   "payor":[{"identifier":{"value":"1234567893"}}]}},
	 {"fullUrl":"urn:uuid:p3","resource":{"resourceType":"Patient","name":[{"family":"POE","given":["PAT"]}],"birthDate":"1991-01-01"}},
	 {"fullUrl":"urn:uuid:c3","resource":{"resourceType":"Coverage","status":"active","subscriberId":"B-1","beneficiary":{"reference":"urn:uuid:p3"},
	   "payor":[{"identifier":{"value":"1234567893"}}]}},
	 {"resource":{"resourceType":"Observation","status":"final"}}
	]}`
	r = e.Post("/admin/members?all-or-nothing=true", []byte(bundle), "Content-Type", "application/fhir+json")
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), "Bundle.entry[2].resource.birthDate") {
		t.Errorf("all-or-nothing: %d %s", r.Status, r.Body)
	}
	if r := e.Get("/admin/members/B-1"); r.Status != http.StatusNotFound {
		t.Errorf("all-or-nothing wrote a member: %d %s", r.Status, r.Body)
	}
	rep = importRoster(t, e, []byte(bundle), "application/fhir+json", "")
	want := map[string]string{
		"Bundle.entry[2].resource.birthDate":    "birth date",
		"Bundle.entry[3].resource.status":       "status",
		"Bundle.entry[5].resource.subscriberId": "two different people",
		"Bundle.entry[6].resource":              "Observation",
	}
	got := map[string]string{}
	for _, er := range rep.Errors {
		got[er.Expression] = er.Reason
		if er.Entry == nil {
			t.Errorf("error without its entry index: %+v", er)
		}
	}
	for x, part := range want {
		if !strings.Contains(got[x], part) {
			t.Errorf("error at %s: got %q, want it to mention %q (all: %v)", x, got[x], part, got)
		}
	}
	if rep.Created != 1 {
		t.Errorf("good entries not imported: %+v", rep)
	}

	// NDJSON errors carry the line.
	r = e.Post("/admin/members", []byte("{\"resourceType\":\"Patient\",\"id\":\"x\"}\nnot json\n"), "Content-Type", ndjsonCT)
	var rep2 importReport
	_ = json.Unmarshal(r.Body, &rep2)
	if r.Status != http.StatusOK || len(rep2.Errors) != 2 || rep2.Errors[0].Line != 1 || rep2.Errors[0].Expression != "Patient.name.family" || rep2.Errors[1].Line != 2 {
		t.Errorf("ndjson errors: %d %s", r.Status, r.Body)
	}
	for _, bad := range []struct{ body, ct string }{
		{`{"resourceType":"Bundle","entry":[{"resource":`, "application/fhir+json"},
		{`[1,2]`, "application/fhir+json"},
		{``, ndjsonCT},
		{`x`, "text/csv"},
	} {
		if r := e.Post("/admin/members", []byte(bad.body), "Content-Type", bad.ct); r.Status < 400 || r.Status >= 500 || !strings.Contains(string(r.Body), "OperationOutcome") {
			t.Errorf("bad body %q: %d %s", bad.body, r.Status, r.Body)
		}
	}
}

// crError is one ClaimResponse.error: its X12 901 code, errorPath and
// follow-up action.
type crError struct{ Code, Path, Followup string }

func claimResponseErrors(t *testing.T, body []byte) (outcome string, errs []crError) {
	t.Helper()
	cr, _ := checkPASResponse(t, body)
	outcome, _ = cr["outcome"].(string)
	list, _ := cr["error"].([]any)
	for _, x := range list {
		m := x.(map[string]any)
		var ce crError
		ce.Code = m["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string)
		exts, _ := m["extension"].([]any)
		for _, ex := range exts {
			ex := ex.(map[string]any)
			switch {
			case strings.HasSuffix(ex["url"].(string), "extension-errorPath"):
				ce.Path, _ = ex["valueString"].(string)
			case strings.HasSuffix(ex["url"].(string), "extension-errorFollowupAction"):
				ce.Followup = ex["valueCodeableConcept"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string)
			}
		}
		errs = append(errs, ce)
	}
	return outcome, errs
}

// homecareFor is the README's request for another member of the sample
// roster: Coverage (entry 3) and Patient (entry 4) changed, items dated.
func homecareFor(t *testing.T, subscriber, relationship, family, given, birthDate, serviced string) []byte {
	return edit(t, testenv.Fixture(t, homecare), func(b map[string]any) {
		entries := b["entry"].([]any)
		cov := entries[3].(map[string]any)["resource"].(map[string]any)
		cov["subscriberId"] = subscriber
		x12 := map[string]string{"self": "18", "spouse": "01", "child": "19"}[relationship]
		cov["relationship"] = map[string]any{"coding": []any{
			map[string]any{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": relationship},
			map[string]any{"system": "https://codesystem.x12.org/005010/1069", "code": x12}}}
		if relationship != "self" {
			// PAS self-beneficiary: a dependent's Coverage names the subscriber.
			cov["subscriber"] = map[string]any{"reference": "Patient/SubscriberExample"}
		}
		pat := entries[4].(map[string]any)["resource"].(map[string]any)
		pat["name"] = []any{map[string]any{"family": family, "given": []any{given}}}
		if birthDate != "" {
			pat["birthDate"] = birthDate
		}
		if serviced != "" {
			for _, it := range entries[0].(map[string]any)["resource"].(map[string]any)["item"].([]any) {
				it.(map[string]any)["servicedDate"] = serviced
			}
		}
	})
}

func TestEligibilityPAS(t *testing.T) {
	e := testenv.Start(t, testenv.WithNow(clock()), testenv.WithRules(planRules))
	importRoster(t, e, sampleRoster(t), ndjsonCT, "")
	tests := []struct {
		name    string
		body    []byte
		errs    []crError
		actions map[int]string
	}{
		{"found by member id", testenv.Fixture(t, homecare), nil, map[int]string{1: "A4", 2: "A4"}},
		{"not found", testenv.Fixture(t, kitOK), []crError{{"75", "Bundle.entry[3].resource.identifier[1]", "C"}}, nil},
		{"birth date differs", homecareFor(t, "1122334455", "self", "SMITH", "JOE", "1970-01-01", ""),
			[]crError{{"71", "Bundle.entry[4].resource.birthDate", "C"}}, nil},
		{"name differs", homecareFor(t, "1122334455", "self", "SMYTHE", "JOE", "", ""),
			[]crError{{"73", "Bundle.entry[4].resource.name[0]", "C"}}, nil},
		{"dependent by subscriber", homecareFor(t, "1122334455", "spouse", "SMITH", "JANE", "1963-09-30", "2026-11-10"), nil, map[int]string{1: "A4", 2: "A4"}},
		{"dependent not on file", homecareFor(t, "1122334455", "child", "SMITH", "TOM", "2010-03-03", "2026-11-10"),
			[]crError{{"77", "Bundle.entry[3].resource.subscriberId", "C"}}, nil},
		{"coverage ended before the service date", homecareFor(t, "MA-2000417", "self", "ALVAREZ", "RUTH", "1950-02-14", "2026-11-10"),
			[]crError{{"57", "Bundle.entry[0].resource.item[0].servicedDate", "C"}, {"57", "Bundle.entry[0].resource.item[1].servicedDate", "C"}}, nil},
		{"service date in the new period selects the new plan", homecareFor(t, "MCD-5550123", "self", "NGUYEN", "KAI", "2012-06-03", "2026-08-01"), nil, map[int]string{1: "A1", 2: "A1"}},
		{"service date in the old period selects the old plan", homecareFor(t, "MCD-5550123", "self", "NGUYEN", "KAI", "2012-06-03", "2026-03-01"), nil, map[int]string{1: "A4", 2: "A4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.Post(submitPath, tt.body)
			if r.Status != http.StatusOK {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			outcome, errs := claimResponseErrors(t, r.Body)
			if len(tt.errs) > 0 {
				if outcome != "error" || !equalErrors(errs, tt.errs) {
					t.Errorf("outcome %s, errors %+v; want error %+v", outcome, errs, tt.errs)
				}
				return
			}
			_, items := checkPASResponse(t, r.Body)
			if outcome != "complete" || len(errs) > 0 {
				t.Fatalf("outcome %s %+v, want complete", outcome, errs)
			}
			for seq, want := range tt.actions {
				if items[seq].ReviewAction != want {
					t.Errorf("item %d: %s, want %s", seq, items[seq].ReviewAction, want)
				}
			}
		})
	}
}

func equalErrors(got, want []crError) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// TestEligibilityPayers: the payer list is enforced on $submit, and a
// member covered only by a payer this instance does not serve is refused.
func TestEligibilityPayers(t *testing.T) {
	e := testenv.Start(t, testenv.WithNow(clock()), testenv.WithConfig(func(c *app.Config) {
		c.PayerIDs = []coverage.PayerID{{System: "http://hl7.org/fhir/sid/us-npi", Value: "1234567893"}}
	}))
	importRoster(t, e, sampleRoster(t), ndjsonCT, "")
	r := e.Post(submitPath, homecareFor(t, "OT-9001", "self", "CHEN", "LI", "1978-11-21", "2026-11-10"))
	if r.Status != http.StatusOK {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	if outcome, errs := claimResponseErrors(t, r.Body); outcome != "error" || len(errs) != 2 || errs[0].Code != "78" {
		t.Errorf("member of another payer: %s %+v", outcome, errs)
	}
	other := edit(t, testenv.Fixture(t, homecare), func(b map[string]any) {
		org := b["entry"].([]any)[2].(map[string]any)["resource"].(map[string]any)
		org["identifier"] = []any{map[string]any{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1407833767"}}
	})
	r = e.Post(submitPath, other)
	if outcome, errs := claimResponseErrors(t, r.Body); outcome != "error" || len(errs) != 1 || errs[0].Code != "79" || errs[0].Path != "Bundle.entry[3].resource.payor[0]" {
		t.Errorf("request to a payer not served: %s %+v", outcome, errs)
	}
}

// TestEligibilityModes: warn decides and flags; auto with an empty roster
// decides as before; off ignores the roster.
func TestEligibilityModes(t *testing.T) {
	t.Run("auto with an empty roster", func(t *testing.T) {
		e := testenv.Start(t, testenv.WithNow(clock()))
		r := e.Post(submitPath, testenv.Fixture(t, kitOK))
		if outcome, errs := claimResponseErrors(t, r.Body); outcome != "complete" || len(errs) != 0 {
			t.Errorf("%s %+v", outcome, errs)
		}
	})
	t.Run("off", func(t *testing.T) {
		e := testenv.Start(t, testenv.WithNow(clock()), testenv.WithConfig(func(c *app.Config) { c.Eligibility = "off" }))
		importRoster(t, e, sampleRoster(t), ndjsonCT, "")
		r := e.Post(submitPath, testenv.Fixture(t, kitOK))
		if outcome, _ := claimResponseErrors(t, r.Body); outcome != "complete" {
			t.Errorf("off: %s", outcome)
		}
	})
	t.Run("warn", func(t *testing.T) {
		e := testenv.Start(t, testenv.WithNow(clock()), testenv.WithConfig(func(c *app.Config) { c.Eligibility = "warn" }))
		importRoster(t, e, sampleRoster(t), ndjsonCT, "")
		r := e.Post(submitPath, testenv.Fixture(t, kitOK))
		cr, _ := checkPASResponse(t, r.Body)
		if cr["outcome"] != "complete" {
			t.Fatalf("warn: outcome %v", cr["outcome"])
		}
		id := authorizationID(t, cr)
		a, err := e.App.Store.Authorization(context.Background(), "default", id)
		if err != nil {
			t.Fatal(err)
		}
		if el := a.Eligibility; el == nil || !el.Flagged || el.Status != "not-found" || el.Mode != "warn" {
			t.Errorf("warn: eligibility on the chain %+v", a.Eligibility)
		}
	})
}

func authorizationID(t *testing.T, cr map[string]any) string {
	t.Helper()
	for _, x := range cr["identifier"].([]any) {
		id := x.(map[string]any)
		if id["system"] == "urn:priora:authorization" {
			return id["value"].(string)
		}
	}
	t.Fatal("no authorization id on the ClaimResponse")
	return ""
}

// TestEligibilityCRD: CRD answers from the roster (resp-44/45).
func TestEligibilityCRD(t *testing.T) {
	e := testenv.Start(t)
	importRoster(t, e, sampleRoster(t), ndjsonCT, "")
	call := func() hookstest.CoverageInfo {
		t.Helper()
		body := testenv.Fixture(t, "crd/ig/CRDServiceRequest.json")
		r := e.Post("/cds-services/order-sign-crd", body, "Content-Type", "application/json")
		if r.Status != 200 {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		got := hookstest.Check(t, "2.2", "order-sign", body, r.Body)
		ci := got.CoverageInfo["ServiceRequest/2468"]
		if len(ci) != 1 {
			t.Fatalf("coverage information: %s", r.Body)
		}
		return ci[0]
	}
	if ci := call(); ci.Covered != "not-covered" || len(ci.Reasons) != 1 || ci.Reasons[0] != "no-member-found" {
		t.Errorf("member not on the roster: %+v", ci)
	}
	member := func(start, end string) string {
		return `{"resourceType":"Organization","id":"acme","identifier":[{"system":"http://example.org/payer-id","value":"ACME"}],"name":"Acme Health Plan"}
{"resourceType":"Patient","id":"amy","name":[{"family":"Baxter","given":["Amy"]}],"birthDate":"1987-02-20","gender":"female"}
{"resourceType":"Coverage","id":"amy-` + start + `","status":"active","identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MB"}]},"system":"http://example.org/fhir/memberidentifier","value":"88800933501"}],"subscriberId":"888009335","relationship":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/subscriber-relationship","code":"self"}]},"beneficiary":{"reference":"Patient/amy"},"payor":[{"reference":"Organization/acme"}],"period":{"start":"` + start + `","end":"` + end + `"}}
`
	}
	importRoster(t, e, []byte(member("2020-01-01", "2021-12-31")), ndjsonCT, "")
	if ci := call(); ci.Covered != "not-covered" || len(ci.Reasons) != 1 || ci.Reasons[0] != "no-active-coverage" {
		t.Errorf("coverage ended: %+v", ci)
	}
	importRoster(t, e, []byte(member("2022-01-01", "2099-12-31")), ndjsonCT, "")
	if ci := call(); ci.Covered == "not-covered" || ci.PANeeded != "auth-needed" {
		t.Errorf("covered member: %+v", ci)
	}
}

// slowRoster is an import stream that stops after its first line until
// released.
type slowRoster struct {
	first            []byte
	started, release chan struct{}
}

func (s *slowRoster) Read(p []byte) (int, error) {
	if s.first != nil {
		n := copy(p, s.first)
		s.first = nil
		close(s.started)
		return n, nil
	}
	<-s.release
	return 0, io.EOF
}

func (s *slowRoster) Close() error { return nil }

// TestMembersImportOneAtATime: while an import from another process runs
// (here a second roster on the same store, as `priora members import`
// beside the server has), the API refuses an import with 409 instead of
// racing it, and takes it once the first has finished.
func TestMembersImportOneAtATime(t *testing.T) {
	e := testenv.Start(t)
	other := members.New(e.App.Store, members.Auto, nil)
	src := &slowRoster{first: []byte(`{"resourceType":"Organization","id":"o","identifier":[{"system":"urn:x","value":"1"}]}` + "\n"),
		started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := other.Import(context.Background(), []members.Source{{Name: "cli", Format: members.NDJSON, Open: func() (io.ReadCloser, error) { return src, nil }}}, members.Options{})
		done <- err
	}()
	<-src.started
	r := e.Post("/admin/members", sampleRoster(t), "Content-Type", ndjsonCT)
	if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), "another roster import is running") {
		t.Errorf("an import during another: want 409 with the reason, got %d %s", r.Status, r.Body)
	}
	close(src.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rep := importRoster(t, e, sampleRoster(t), ndjsonCT, ""); rep.Created != 5 {
		t.Errorf("after the other import: %+v", rep)
	}
}
