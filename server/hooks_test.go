package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/priora/priora/hooks/hookstest"
	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/store"
)

// generousEHR is a FHIR server on 127.0.0.1 for the fixture sweep: it
// serves the Inferno kit's EHR test data and makes up what a fixture
// names but no data set holds (a Patient, the patient's one active
// Coverage, an order), as a real EHR holding the fixture's data would.
type generousEHR struct {
	*httptest.Server
	mu    sync.Mutex
	known map[string]json.RawMessage
}

func newGenerousEHR(t *testing.T) *generousEHR {
	g := &generousEHR{known: map[string]json.RawMessage{}}
	var b struct {
		Entry []struct{ Resource json.RawMessage } `json:"entry"`
	}
	if err := json.Unmarshal(testenv.Fixture(t, "crd/inferno/crd_transaction_bundle.json"), &b); err != nil {
		t.Fatal(err)
	}
	for _, e := range b.Entry {
		var h struct{ ResourceType, ID string }
		_ = json.Unmarshal(e.Resource, &h)
		g.known[h.ResourceType+"/"+h.ID] = e.Resource
	}
	g.Server = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.Close)
	return g
}

func (g *generousEHR) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/fhir+json")
	g.mu.Lock()
	defer g.mu.Unlock()
	p := strings.TrimPrefix(r.URL.Path, "/")
	if typ, id, ok := strings.Cut(p, "/"); ok {
		if raw, ok := g.known[p]; ok {
			_, _ = w.Write(raw)
			return
		}
		res := map[string]any{"resourceType": typ, "id": id}
		switch typ {
		case "ServiceRequest", "MedicationRequest", "DeviceRequest":
			res["status"], res["intent"] = "active", "order"
			res["subject"] = map[string]any{"reference": "Patient/unknown"}
		}
		_ = json.NewEncoder(w).Encode(res)
		return
	}
	// Searches: Coverage?patient=X&status=active gets the patient's one coverage.
	pat := r.URL.Query().Get("patient")
	var entries []any
	for k, raw := range g.known {
		if strings.HasPrefix(k, "Coverage/") && strings.Contains(string(raw), `"Patient/`+pat+`"`) {
			entries = append(entries, map[string]any{"resource": raw})
		}
	}
	if len(entries) == 0 {
		entries = append(entries, map[string]any{"resource": map[string]any{
			"resourceType": "Coverage", "id": "cov-" + pat, "status": "active", "subscriberId": "M-" + pat,
			"beneficiary": map[string]any{"reference": "Patient/" + pat},
			"payor":       []any{map[string]any{"display": "Sample Health Plan"}},
		}})
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"resourceType": "Bundle", "type": "searchset", "entry": entries})
}

// TestCRDFixtures sends every hook request of the IG, the Inferno kit and
// the reference implementation, and the hook library's contexts, to its
// service: each must get 200 and a response that keeps CDS Hooks' and
// CRD's rules, with one coverage-information update per order or
// appointment on order-sign and appointment-book.
func TestCRDFixtures(t *testing.T) {
	e := testenv.Start(t)
	ehr := newGenerousEHR(t)
	var files []string
	for _, g := range []string{"crd/ig/CRDServiceRequest*.json", "crd/inferno/presets/*.json", "crd/inferno/spec/*_request.json", "crd/ri/*.json", "crd/library/*.json"} {
		files = append(files, testenv.Fixtures(t, g)...)
	}
	if len(files) < 30 {
		t.Fatalf("found only %d fixtures", len(files))
	}
	for _, f := range files {
		t.Run(path.Base(f), func(t *testing.T) {
			var req map[string]any
			if err := json.Unmarshal(testenv.Fixture(t, f), &req); err != nil {
				t.Fatal(err)
			}
			if _, ok := req["hook"]; !ok { // a hook library context: make it a call
				req["hook"] = strings.SplitN(path.Base(f), "_", 2)[0]
				req["hookInstance"] = "3c4e4a43-9b8b-4a0e-8b6b-5e3d7d0b1c9e"
				req["fhirServer"] = "https://ehr.example.org/fhir"
			}
			if s, ok := req["fhirServer"].(string); ok && s != "" {
				req["fhirServer"] = ehr.URL // the fixture's EHR, reachable
			}
			body, _ := json.Marshal(req)
			hook := req["hook"].(string)
			r := e.With(t).Post("/cds-services/"+hook+"-crd", body, "Content-Type", "application/json")
			if r.Status != 200 {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			version := "2.2"
			if ext, ok := req["extension"].(map[string]any); ok && strings.HasPrefix(fmt.Sprint(ext["davinci-crd.requestedVersion"]), "2.0") {
				version = "2.0"
			}
			got := hookstest.Check(t, version, hook, body, r.Body)
			if hook == "order-sign" || hook == "appointment-book" {
				want := hookstest.InScope(t, body)
				if len(got.SystemActions) != len(want) {
					t.Errorf("%d system actions for %d orders %v: %s", len(got.SystemActions), len(want), want, r.Body)
				}
				for _, ref := range want {
					if n := strings.Count(strings.Join(want, " ")+" ", ref+" "); len(got.CoverageInfo[ref]) != n {
						t.Errorf("%s: %d coverage-information extensions, want %d", ref, len(got.CoverageInfo[ref]), n)
					}
				}
			}
		})
	}
}

func TestCRDDiscoveryAndCORS(t *testing.T) {
	e := testenv.Start(t)
	r := e.Get("/cds-services", "Origin", "https://ehr.example.org")
	if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("discovery: %d %v", r.Status, r.Header)
	}
	var d struct {
		Services []struct{ Hook, ID string } `json:"services"`
	}
	if err := json.Unmarshal(r.Body, &d); err != nil || len(d.Services) != 6 {
		t.Fatalf("discovery body: %v %s", err, r.Body)
	}
	for _, p := range []string{"/cds-services", "/cds-services/order-sign-crd", "/cds-services/order-sign-crd/feedback"} {
		r := e.Do(http.MethodOptions, p, nil, "Origin", "https://ehr.example.org",
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
		if r.Status != 204 || !strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "Authorization") ||
			!strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "POST") {
			t.Errorf("preflight %s: %d %v", p, r.Status, r.Header)
		}
	}
}

// TestCRDErrors: CDS Hooks errors are a status and {"error": ...}, never a
// FHIR OperationOutcome, never a 500 for bad input.
func TestCRDErrors(t *testing.T) {
	e := testenv.Start(t)
	good := testenv.Fixture(t, "crd/ig/CRDServiceRequest.json")
	tests := []struct {
		name, path string
		body       []byte
		ct         string
		status     int
	}{
		{"invalid JSON", "/cds-services/order-sign-crd", []byte(`{"hook": "order-sign",`), "application/json", 400},
		{"unknown service", "/cds-services/nope", good, "application/json", 404},
		{"wrong hook", "/cds-services/order-select-crd", good, "application/json", 400},
		{"not JSON content", "/cds-services/order-sign-crd", good, "text/plain", 415},
		{"412 without data or server", "/cds-services/order-sign-crd", testenv.Fixture(t, "crd/ig/CRDServiceRequest3.json"), "application/json", 0},
		{"bad feedback", "/cds-services/order-sign-crd/feedback", []byte(`{"feedback":[{}]}`), "application/json", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if tt.status == 0 { // drop fhirServer so nothing can be fetched
				var m map[string]any
				_ = json.Unmarshal(body, &m)
				delete(m, "fhirServer")
				delete(m, "fhirAuthorization")
				body, _ = json.Marshal(m)
				tt.status = 412
			}
			r := e.With(t).Post(tt.path, body, "Content-Type", tt.ct)
			if r.Status != tt.status {
				t.Errorf("status %d, want %d: %s", r.Status, tt.status, r.Body)
			}
			var m map[string]any
			if err := json.Unmarshal(r.Body, &m); err != nil || m["error"] == nil || m["resourceType"] != nil {
				t.Errorf("want a CDS Hooks error body, got %s", r.Body)
			}
		})
	}
}

// TestCRDRecords: the assertion is stored for PAS, the call is recorded,
// feedback is kept, and the logs carry no patient data.
func TestCRDRecords(t *testing.T) {
	e := testenv.Start(t)
	ctx := context.Background()
	body := testenv.Fixture(t, "crd/ig/CRDServiceRequest.json")
	r := e.Post("/cds-services/order-sign-crd", body, "Content-Type", "application/json")
	if r.Status != 200 {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	got := hookstest.Check(t, "2.2", "order-sign", body, r.Body)
	ci := got.CoverageInfo["ServiceRequest/2468"]
	if len(ci) != 1 {
		t.Fatalf("no coverage information for ServiceRequest/2468: %s", r.Body)
	}
	a, err := e.App.Store.CoverageAssertion(ctx, ci[0].AssertionID)
	if err != nil {
		t.Fatalf("assertion %s: %v", ci[0].AssertionID, err)
	}
	if a.Order != "ServiceRequest/2468" || a.Covered != ci[0].Covered || a.PANeeded != "auth-needed" || a.MemberID != "888009335" ||
		len(a.Codes) == 0 || a.Codes[0].Code != "E0431" || a.RuleID != "hospital-bed" || a.Expires.IsZero() {
		t.Errorf("stored assertion: %+v", a)
	}
	calls, err := e.App.Store.HookCalls(ctx, a.Date.Add(-60e9), 10)
	if err != nil || len(calls) != 1 || calls[0].HookInstance != "d5a80646-7ef5-4edf-ade9-72407ca28c76" || calls[0].Status != 200 || len(calls[0].Assertions) != 2 {
		t.Errorf("call records: %v %+v", err, calls)
	}
	// The call record is the call's audit record: the trail lists the call
	// once, with its request id and the assertions it made.
	trail, err := e.App.Store.Audit(ctx, store.AuditFilter{Since: a.Date.Add(-60e9)})
	var hookAudits []store.AuditRecord
	for _, x := range trail {
		if x.Route == "/cds-services/:id" {
			hookAudits = append(hookAudits, x)
		}
	}
	if err != nil || len(hookAudits) != 1 || hookAudits[0].Type != "cds-hook" || hookAudits[0].RequestID == "" ||
		hookAudits[0].Status != 200 || !slices.Contains(hookAudits[0].Entities, "coverage-assertion/"+a.ID) {
		t.Errorf("audit trail of the call: %v %+v", err, hookAudits)
	}
	fb := testenv.Fixture(t, "crd/cdshooks/21-example-overridden-guidance-with-overridereason.json")
	if r := e.Post("/cds-services/order-sign-crd/feedback", fb, "Content-Type", "application/json"); r.Status != 200 {
		t.Fatalf("feedback: %d %s", r.Status, r.Body)
	}
	var f struct {
		Feedback []struct{ Card string } `json:"feedback"`
	}
	_ = json.Unmarshal(fb, &f)
	if stored, err := e.App.Store.HookFeedbackFor(ctx, f.Feedback[0].Card); err != nil || len(stored) != 1 {
		t.Errorf("feedback stored: %v %+v", err, stored)
	}
	logs := e.Logs.String()
	if !strings.Contains(logs, `"msg":"cds hook call"`) {
		t.Errorf("no hook call log line")
	}
	for _, phi := range []string{"888009335", "Baxter", "Patient/123"} {
		if strings.Contains(logs, phi) {
			t.Errorf("logs carry patient data %q", phi)
		}
	}
}
