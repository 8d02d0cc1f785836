package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/priora/priora/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite golden files")

const submitPath = "/fhir/Claim/$submit"

// fixedNow is the server clock in tests that compare golden files.
var fixedNow = time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC)

func clock() func() time.Time { return func() time.Time { return fixedNow } }

func TestSubmitExamples(t *testing.T) {
	e := testenv.Start(t, testenv.WithNow(clock()))
	tests := []struct {
		fixture string
		want    map[int]string // item sequence → X12 306 code under the sample rules
		outcome string
	}{
		{"pas/ig/Bundle-ReferralAuthorizationBundleExample.json", map[int]string{1: "A1"}, "complete"},
		{"pas/ig/Bundle-MedicalServicesAuthorizationBundleExample.json", map[int]string{1: "A1"}, "complete"},
		{"pas/ig/Bundle-HomecareAuthorizationBundleExample.json", map[int]string{1: "A1", 2: "A4"}, "complete"},
		{"pas/ig/Bundle-SurgicalRequestBundleExample.json", map[int]string{1: "A4"}, "complete"},
		{"pas/kit/approval_pa_submit_request_payload.json", map[int]string{1: "A1", 2: "A1"}, "complete"},
		{"pas/kit/pended_pa_submit_request_payload.json", map[int]string{1: "A1", 2: "A1"}, "complete"},
		{"pas/kit/must_support_pa_submit_request_payload.1.json", map[int]string{1: "A1", 2: "A1"}, "complete"},
		{"pas/kit/must_support_pa_submit_request_payload.2.json", map[int]string{1: "A1", 2: "A1"}, "complete"},
		{"pas/kit/claim_update_initial_submit_payload.json", map[int]string{1: "A1"}, "complete"},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.fixture), func(t *testing.T) {
			req := testenv.Fixture(t, tt.fixture)
			r := e.With(t).Post(submitPath, req)
			if r.Status != http.StatusOK {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
				t.Errorf("Content-Type %q", ct)
			}
			cr, items := checkPASResponse(t, r.Body)
			if cr["outcome"] != tt.outcome {
				t.Errorf("outcome %v, want %s", cr["outcome"], tt.outcome)
			}
			got := map[int]string{}
			for seq, it := range items {
				got[seq] = it.ReviewAction
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decisions (-want +got):\n%s", diff)
			}
			seqs := requestSequences(t, req)
			if len(seqs) != len(items) {
				t.Errorf("request has items %v, response answers %d", seqs, len(items))
			}
			golden(t, "submit-"+strings.TrimSuffix(filepath.Base(tt.fixture), ".json"), r.Body)
		})
	}
}

// golden compares a response with testdata/<name>.golden.json after masking
// the values that differ on every run (random UUIDs).
func golden(t *testing.T, name string, body []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	pretty, _ := json.MarshalIndent(v, "", "  ")
	pretty = maskUUIDs(pretty)
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
		if err := os.WriteFile(path, append(pretty, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./server -run %s -update to create it)", err, t.Name())
	}
	if diff := cmp.Diff(string(bytes.TrimSpace(want)), string(bytes.TrimSpace(pretty))); diff != "" {
		t.Errorf("response differs from %s (-want +got):\n%s", path, diff)
	}
}

var uuidPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

func maskUUIDs(b []byte) []byte {
	seen := map[string]string{}
	return uuidPattern.ReplaceAllFunc(b, func(m []byte) []byte {
		k := string(m)
		if _, ok := seen[k]; !ok {
			seen[k] = fmt.Sprintf("uuid-%d", len(seen)+1)
		}
		return []byte(seen[k])
	})
}

func TestSubmitParametersWrapper(t *testing.T) {
	e := testenv.Start(t)
	req := testenv.Fixture(t, "pas/ig/Bundle-ReferralAuthorizationBundleExample.json")
	wrapped := []byte(`{"resourceType":"Parameters","parameter":[{"name":"resource","resource":` + string(req) + `}]}`)
	r := e.Post(submitPath, wrapped)
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	_, items := checkPASResponse(t, r.Body)
	if items[1].ReviewAction != "A1" {
		t.Errorf("item 1 = %q, want A1", items[1].ReviewAction)
	}
	// The raw Bundle is the same submission: replayed, not decided again.
	raw := e.Post(submitPath, req)
	if !bytes.Equal(raw.Body, r.Body) {
		t.Errorf("raw and wrapped forms of one submission answered differently")
	}
}

func TestSubmitRejects(t *testing.T) {
	e := testenv.Start(t)
	good := testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json")
	tests := []struct {
		name        string
		body        []byte
		contentType string
		status      int
		expression  string
		diagnostic  string
	}{
		{"empty Bundle (kit error test)", testenv.Fixture(t, "pas/errors/nonconformant_pas_bundle.json"), "", 400, "Bundle.entry", "no entries"},
		{"empty body", []byte(""), "", 400, "", "empty"},
		{"not JSON", []byte("<Bundle/>"), "", 400, "", "not a JSON object"},
		{"truncated JSON", good[:len(good)/2], "", 400, "", "invalid JSON"},
		{"not a Bundle", []byte(`{"resourceType":"Patient","id":"p1"}`), "", 400, "Patient", "expected a PAS request Bundle"},
		{"Parameters without resource", []byte(`{"resourceType":"Parameters","parameter":[{"name":"x","valueString":"y"}]}`), "", 400, "Parameters.parameter", "named resource"},
		{"Claim not first", moveClaimLast(t, good), "", 400, "Bundle.entry[0].resource", "first entry must be a PAS Claim"},
		{"unresolved reference", dropEntry(t, good, "Coverage"), "", 400, "Bundle.entry[0].resource.insurance[0].coverage", "does not resolve"},
		{"duplicate supportingInfo sequence", duplicateSupportingInfo(t, good), "", 400, "Bundle.entry[0].resource.supportingInfo[1].sequence", "used twice"},
		{"duplicate item sequence", edit(t, good, func(b map[string]any) { claim(b)["item"].([]any)[1].(map[string]any)["sequence"] = 1.0 }), "", 400, "Bundle.entry[0].resource.item[1].sequence", "used twice"},
		{"unknown element", edit(t, good, func(b map[string]any) { claim(b)["favouriteColour"] = "blue" }), "", 400, "Bundle.entry[0].resource.favouriteColour", "unknown element 'favouriteColour'"},
		{"bad code on a required binding", edit(t, good, func(b map[string]any) { claim(b)["status"] = "bogus" }), "", 400, "", ""},
		{"wrong Bundle.type", edit(t, good, func(b map[string]any) { b["type"] = "batch" }), "", 400, "Bundle.type", "collection"},
		{"no Bundle.identifier", edit(t, good, func(b map[string]any) { delete(b, "identifier") }), "", 400, "Bundle.identifier", "identifier"},
		{"use is not preauthorization", edit(t, good, func(b map[string]any) { claim(b)["use"] = "claim" }), "", 400, "Bundle.entry[0].resource.use", "preauthorization"},
		{"unknown modifier extension", edit(t, good, func(b map[string]any) {
			it := claim(b)["item"].([]any)[0].(map[string]any)
			it["modifierExtension"] = []any{map[string]any{"url": "http://example.org/never-heard-of-it", "valueBoolean": true}}
		}), "", 400, "Bundle.entry[0].resource.item[0].modifierExtension[0]", "not understood"},
		{"relative fullUrl", edit(t, good, func(b map[string]any) { b["entry"].([]any)[1].(map[string]any)["fullUrl"] = "Organization/UMOExample" }), "", 400, "Bundle.entry[1].fullUrl", "absolute URL or a urn:uuid"},
		{"duplicate fullUrl", edit(t, good, func(b map[string]any) {
			ents := b["entry"].([]any)
			ents[2].(map[string]any)["fullUrl"] = ents[1].(map[string]any)["fullUrl"]
		}), "", 400, "Bundle.entry[2].fullUrl", "already used"},
		{"XML content type", good, "application/fhir+xml", 415, "", "not supported"},
		{"form content type", good, "application/x-www-form-urlencoded", 415, "", "not supported"},
		{"deep nesting", deepJSON(200), "", 400, "", "nesting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.contentType != "" {
				hdr = []string{"Content-Type", tt.contentType}
			}
			before := countAuthorizations(t, e)
			r := e.With(t).Post(submitPath, tt.body, hdr...)
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.status, r.Body)
			}
			checkOutcome(t, r.Body, tt.expression, tt.diagnostic)
			if after := countAuthorizations(t, e); after != before {
				t.Errorf("a rejected request stored data: %d → %d authorizations", before, after)
			}
		})
	}
}

func TestSubmitBodyLimit(t *testing.T) {
	e := testenv.Start(t, testenv.WithMaxBody(4096))
	r := e.Post(submitPath, testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json"))
	if r.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413: %s", r.Status, r.Body)
	}
	checkOutcome(t, r.Body, "", "larger than 4096 bytes")
}

func TestSubmitIdempotentAndDurable(t *testing.T) {
	e := testenv.Start(t)
	req := testenv.Fixture(t, "pas/ig/Bundle-HomecareAuthorizationBundleExample.json")
	first := e.Post(submitPath, req)
	if first.Status != http.StatusOK {
		t.Fatalf("status %d: %s", first.Status, first.Body)
	}
	// Concurrent retries of the same submission all get the stored answer.
	var wg sync.WaitGroup
	bodies := make([][]byte, 8)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.Post(submitPath, req)
			if r.Status == http.StatusOK {
				bodies[i] = r.Body
			}
		}()
	}
	wg.Wait()
	for i, b := range bodies {
		if !bytes.Equal(b, first.Body) {
			t.Errorf("retry %d answered differently from the first submission", i)
		}
	}
	if n := countAuthorizations(t, e); n != 1 {
		t.Errorf("%d authorizations stored, want 1", n)
	}
	// A different request reusing the Bundle.identifier is a new submission.
	other := edit(t, req, func(b map[string]any) { claim(b)["item"].([]any)[0].(map[string]any)["sequence"] = 7.0 })
	if r := e.Post(submitPath, other); r.Status != http.StatusOK || bytes.Equal(r.Body, first.Body) {
		t.Errorf("changed request under the same identifier: status %d, same body %v", r.Status, bytes.Equal(r.Body, first.Body))
	}

	e.Restart()
	again := e.Post(submitPath, req)
	if !bytes.Equal(again.Body, first.Body) {
		t.Errorf("after restart the stored response was not replayed")
	}
	if n := countAuthorizations(t, e); n != 2 {
		t.Errorf("%d authorizations after restart, want 2", n)
	}
	var stored struct {
		Items []struct {
			Sequence int `bson:"sequence"`
			Decision struct {
				RuleID string `bson:"ruleId"`
				Reason string `bson:"reason"`
			} `bson:"decision"`
		} `bson:"items"`
	}
	err := e.App.Store.DB().Collection("authorizations").FindOne(context.Background(), bson.D{{Key: "submissions.bundleIdentifier", Value: "http://example.org/SUBMITTER_TRANSACTION_IDENTIFIER|B56789"}}).Decode(&stored)
	if err != nil {
		t.Fatalf("stored authorization: %v", err)
	}
	for _, it := range stored.Items {
		if it.Decision.RuleID == "" || it.Decision.Reason == "" {
			t.Errorf("item %d decision trail lacks rule or reason", it.Sequence)
		}
	}
	n, err := e.App.Store.DB().Collection("bundles").CountDocuments(context.Background(), bson.D{})
	if err != nil || n != 2 {
		t.Errorf("stored request bundles = %d (%v), want 2", n, err)
	}
}

func TestSubmitDecisions(t *testing.T) {
	rules := `
version: 1
defaults: {unknownCode: pend, authorizationDays: 30}
rules:
  - id: approve-visit
    match: {codes: [{system: "https://codesystem.x12.org/005010/1365", codes: ["3"]}], quantity: {max: 1}}
    decision: {action: approve, reason: routine}
  - id: trim-visits
    match: {codes: [{system: "https://codesystem.x12.org/005010/1365", codes: ["3"]}], quantity: {min: 2}}
    decision: {action: modify, authorizeQuantity: 1, reasonCode: "0P", note: "One visit authorized.", reason: limit}
  - id: deny-dme
    match: {codes: [{system: "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", codes: ["E0250"]}]}
    decision: {action: deny, reasonCode: "0U", note: "Not a covered benefit.", reason: excluded}
`
	e := testenv.Start(t, testenv.WithRules(rules), testenv.WithNow(clock()))
	req := edit(t, testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json"), func(b map[string]any) {
		items := claim(b)["item"].([]any)
		items[1].(map[string]any)["quantity"] = map[string]any{"value": 4.0, "unit": "visit"}
		third := cloneJSON(items[0]).(map[string]any)
		third["sequence"] = 3.0
		third["productOrService"] = map[string]any{"coding": []any{map[string]any{"system": "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "code": "E0250"}}}
		fourth := cloneJSON(items[0]).(map[string]any)
		fourth["sequence"] = 4.0
		fourth["productOrService"] = map[string]any{"coding": []any{map[string]any{"system": "http://www.ama-assn.org/go/cpt", "code": "99999"}}}
		claim(b)["item"] = append(items, third, fourth)
	})
	r := e.Post(submitPath, req)
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	cr, items := checkPASResponse(t, r.Body)
	want := map[int]string{1: "A1", 2: "A6", 3: "A3", 4: "A4"}
	for seq, code := range want {
		if items[seq].ReviewAction != code {
			t.Errorf("item %d = %q, want %s", seq, items[seq].ReviewAction, code)
		}
	}
	if diff := cmp.Diff([]string{"0U"}, items[3].Reasons); diff != "" {
		t.Errorf("denial reason codes (-want +got):\n%s", diff)
	}
	if items[1].Number == "" {
		t.Errorf("approved item carries no review number")
	}
	// The modified item's authorized quantity is in addItem (spec-36/37).
	add, _ := cr["addItem"].([]any)
	if len(add) != 1 {
		t.Fatalf("addItem = %v, want one for the modified item", cr["addItem"])
	}
	ai := add[0].(map[string]any)
	if seq := ai["itemSequence"].([]any)[0].(float64); seq != 2 {
		t.Errorf("addItem.itemSequence = %v, want [2]", ai["itemSequence"])
	}
	if q := ai["quantity"].(map[string]any)["value"].(float64); q != 1 {
		t.Errorf("addItem quantity = %v, want 1", q)
	}
	// Denial and modification notes are processNotes linked from the items.
	notes, _ := cr["processNote"].([]any)
	texts := map[string]bool{}
	for _, n := range notes {
		texts[n.(map[string]any)["text"].(string)] = true
	}
	if !texts["Not a covered benefit."] || !texts["One visit authorized."] {
		t.Errorf("processNote = %v", notes)
	}
	if cr["preAuthRef"] == nil || cr["preAuthPeriod"] == nil {
		t.Errorf("approved request lacks preAuthRef/preAuthPeriod")
	}
	golden(t, "submit-mixed-decisions", r.Body)
}

func TestSubmitContentNegotiation(t *testing.T) {
	e := testenv.Start(t)
	req := testenv.Fixture(t, "pas/ig/Bundle-ReferralAuthorizationBundleExample.json")
	for _, tt := range []struct {
		header []string
		status int
	}{
		{[]string{"Content-Type", "application/json"}, 200},
		{[]string{"Content-Type", "application/fhir+json; fhirVersion=4.0"}, 200},
		{[]string{"Accept", "application/fhir+xml"}, 406},
	} {
		r := e.Post(submitPath, req, tt.header...)
		if r.Status != tt.status {
			t.Errorf("%v: status %d, want %d: %s", tt.header, r.Status, tt.status, r.Body)
		}
	}
}

func TestMetadataAndOperationDefinition(t *testing.T) {
	e := testenv.Start(t)
	r := e.Get("/fhir/metadata")
	if r.Status != 200 {
		t.Fatalf("metadata status %d", r.Status)
	}
	cs := r.JSON(t)
	if cs["resourceType"] != "CapabilityStatement" || cs["fhirVersion"] != "4.0.1" {
		t.Errorf("metadata = %v", cs["resourceType"])
	}
	if !strings.Contains(string(r.Body), `"definition":"http://hl7.org/fhir/us/davinci-pas/OperationDefinition/Claim-submit"`) {
		t.Errorf("CapabilityStatement does not name $submit")
	}
	if !strings.Contains(string(r.Body), "profile-pas-request-bundle") {
		t.Errorf("CapabilityStatement does not name the PAS profiles")
	}
	od := e.Get("/fhir/OperationDefinition/Claim-submit").JSON(t)
	if od["code"] != "submit" || od["url"] != "http://hl7.org/fhir/us/davinci-pas/OperationDefinition/Claim-submit" {
		t.Errorf("OperationDefinition = %v %v", od["code"], od["url"])
	}
	if r := e.Get("/fhir/OperationDefinition/nope"); r.Status != 404 {
		t.Errorf("unknown OperationDefinition status %d", r.Status)
	} else {
		checkOutcome(t, r.Body, "", "not known")
	}
	if r := e.Get("/healthz"); r.Status != 200 {
		t.Errorf("healthz %d", r.Status)
	}
	if r := e.Get("/readyz"); r.Status != 200 {
		t.Errorf("readyz %d", r.Status)
	}
	if r := e.Get("/fhir/NoSuchThing"); r.Status != 404 {
		t.Errorf("unknown route status %d", r.Status)
	} else {
		checkOutcome(t, r.Body, "", "no such endpoint")
	}
}

func TestLogsCarryNoPatientData(t *testing.T) {
	e := testenv.Start(t)
	e.Post(submitPath, testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json"))
	e.Post(submitPath, edit(t, testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json"), func(b map[string]any) { claim(b)["use"] = "claim" }))
	logs := e.Logs.String()
	if !strings.Contains(logs, `"route":"/fhir/Claim/$submit"`) {
		t.Fatalf("no access log for $submit: %s", logs)
	}
	for _, phi := range []string{"SMITH", "1947-01-18", "12345678901", "JOE"} {
		if strings.Contains(logs, phi) {
			t.Errorf("logs contain patient data %q", phi)
		}
	}
}

// --- request editing helpers ---

func edit(t *testing.T, body []byte, f func(map[string]any)) []byte {
	t.Helper()
	var b map[string]any
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	f(b)
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func claim(b map[string]any) map[string]any {
	return b["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
}

func cloneJSON(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

func moveClaimLast(t *testing.T, body []byte) []byte {
	return edit(t, body, func(b map[string]any) {
		ents := b["entry"].([]any)
		b["entry"] = append(ents[1:], ents[0])
	})
}

func dropEntry(t *testing.T, body []byte, resourceType string) []byte {
	return edit(t, body, func(b map[string]any) {
		var keep []any
		for _, e := range b["entry"].([]any) {
			if e.(map[string]any)["resource"].(map[string]any)["resourceType"] != resourceType {
				keep = append(keep, e)
			}
		}
		b["entry"] = keep
	})
}

func duplicateSupportingInfo(t *testing.T, body []byte) []byte {
	return edit(t, body, func(b map[string]any) {
		c := claim(b)
		si := c["supportingInfo"].([]any)
		dup := cloneJSON(si[0])
		c["supportingInfo"] = []any{si[0], dup}
	})
}

func deepJSON(depth int) []byte {
	var sb strings.Builder
	sb.WriteString(`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Claim","extension":`)
	for i := 0; i < depth; i++ {
		sb.WriteString(`[{"url":"x","extension":`)
	}
	sb.WriteString(`[]`)
	for i := 0; i < depth; i++ {
		sb.WriteString(`}]`)
	}
	sb.WriteString(`}}]}`)
	return []byte(sb.String())
}

func countAuthorizations(t *testing.T, e *testenv.Env) int64 {
	t.Helper()
	n, err := e.App.Store.DB().Collection("authorizations").CountDocuments(context.Background(), bson.D{})
	if err != nil {
		t.Fatalf("count: %v", err)
	}
	return n
}

func TestSubscriptionTopicServed(t *testing.T) {
	e := testenv.Start(t)
	r := e.Get("/fhir/SubscriptionTopic/PASSubscriptionTopic")
	if r.Status != 200 || !strings.Contains(string(r.Body), `"id":"PASSubscriptionTopic"`) {
		t.Fatalf("topic: %d %.200s", r.Status, r.Body)
	}
	if r := e.Get("/fhir/SubscriptionTopic/other"); r.Status != 404 {
		t.Errorf("unknown topic status %d", r.Status)
	}
}
