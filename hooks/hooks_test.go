package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/priora/priora/coverage"
	"github.com/priora/priora/fhir"
	"github.com/priora/priora/hooks/hookstest"
)

const (
	cpt   = "http://www.ama-assn.org/go/cpt"
	hcpcs = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets" // an alias the rules fold
	icd10 = "http://hl7.org/fhir/sid/icd-10-cm"
)

func patient() map[string]any { return map[string]any{"resourceType": "Patient", "id": "p1"} }

func cov() map[string]any {
	return map[string]any{
		"resourceType": "Coverage", "id": "cov1", "status": "active", "subscriberId": "M123",
		"beneficiary": map[string]any{"reference": "Patient/p1"},
		"payor":       []any{map[string]any{"reference": "Organization/payer1", "display": "Test Health Plan"}},
	}
}

func searchset(rs ...map[string]any) map[string]any {
	var es []any
	for _, r := range rs {
		es = append(es, map[string]any{"resource": r})
	}
	b := map[string]any{"resourceType": "Bundle", "type": "searchset"}
	if len(es) > 0 {
		b["entry"] = es
	}
	return b
}

// sr is a draft ServiceRequest for a code, with optional ICD-10 reasons.
func sr(id, system, code string, dx ...string) map[string]any {
	r := map[string]any{
		"resourceType": "ServiceRequest", "id": id, "status": "draft", "intent": "original-order",
		"code":      map[string]any{"coding": []any{map[string]any{"system": system, "code": code, "display": "Service " + code}}},
		"subject":   map[string]any{"reference": "Patient/p1"},
		"requester": map[string]any{"reference": "Practitioner/dr1"},
	}
	for _, d := range dx {
		r["reasonCode"] = append(asList(r["reasonCode"]), map[string]any{"coding": []any{map[string]any{"system": icd10, "code": d}}})
	}
	return r
}

func asList(v any) []any { l, _ := v.([]any); return l }

func dr(id, code string) map[string]any {
	return map[string]any{
		"resourceType": "DeviceRequest", "id": id, "status": "draft", "intent": "original-order",
		"codeCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": hcpcs, "code": code}}},
		"subject":             map[string]any{"reference": "Patient/p1"},
	}
}

// call builds a hook request: orders in context, patient and coverage
// prefetched unless prefetch says otherwise.
type callSpec struct {
	hook      string
	orders    []map[string]any
	prefetch  map[string]any // replaces the default prefetch entries it names; nil values are JSON null
	noPre     bool           // no prefetch member at all
	config    map[string]any
	version   string
	server    string
	token     string
	extraCtx  map[string]any
	dropCtx   []string
	topExtras map[string]any
}

func (cs callSpec) body(t testing.TB) []byte {
	t.Helper()
	hook := cs.hook
	if hook == "" {
		hook = OrderSign
	}
	var entries []any
	for _, o := range cs.orders {
		entries = append(entries, map[string]any{"resource": o})
	}
	ctx := map[string]any{"userId": "Practitioner/dr1", "patientId": "p1"}
	switch hook {
	case OrderSign, OrderSelect:
		ctx["draftOrders"] = map[string]any{"resourceType": "Bundle", "type": "collection", "entry": entries}
		if hook == OrderSelect {
			var sel []any
			for _, o := range cs.orders {
				sel = append(sel, o["resourceType"].(string)+"/"+o["id"].(string))
			}
			ctx["selections"] = sel
		}
	case AppointmentBook:
		ctx["appointments"] = map[string]any{"resourceType": "Bundle", "type": "collection", "entry": entries}
	case OrderDispatch:
		var refs []any
		for _, o := range cs.orders {
			refs = append(refs, o["resourceType"].(string)+"/"+o["id"].(string))
		}
		ctx["dispatchedOrders"] = refs
		ctx["performer"] = "Organization/perf1"
	case EncounterStart, EncounterDischarge:
		ctx["encounterId"] = "e1"
	}
	for k, v := range cs.extraCtx {
		ctx[k] = v
	}
	for _, k := range cs.dropCtx {
		delete(ctx, k)
	}
	m := map[string]any{"hook": hook, "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", "context": ctx}
	if !cs.noPre {
		pre := map[string]any{"patient": patient(), "coverage": searchset(cov())}
		if hook == OrderDispatch {
			var rs []map[string]any
			rs = append(rs, cs.orders...)
			pre["serviceRequests"] = searchset(rs...)
		}
		for k, v := range cs.prefetch {
			pre[k] = v
		}
		m["prefetch"] = pre
	}
	ext := map[string]any{}
	if cs.config != nil {
		ext["davinci-crd.configuration"] = cs.config
	}
	if cs.version != "" {
		ext["davinci-crd.requestedVersion"] = cs.version
	}
	if len(ext) > 0 {
		m["extension"] = ext
	}
	if cs.server != "" {
		m["fhirServer"] = cs.server
		m["fhirAuthorization"] = map[string]any{"access_token": cs.token, "token_type": "Bearer", "expires_in": 30, "scope": "user/*.rs", "subject": "priora"}
	}
	for k, v := range cs.topExtras {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// want is what one order's coverage information must say.
type want struct {
	covered, pa string
	doc         []string
	reasons     []string // reason codes expected among the reasons
	satisfied   bool
	questionn   bool
}

func checkCI(t *testing.T, ci hookstest.CoverageInfo, w want) {
	t.Helper()
	got := want{covered: ci.Covered, pa: ci.PANeeded, doc: ci.DocNeeded, satisfied: ci.SatisfiedPAID != "", questionn: len(ci.Questionnaire) > 0}
	for _, r := range w.reasons {
		if slices.Contains(ci.Reasons, r) {
			got.reasons = append(got.reasons, r)
		}
	}
	if d := cmp.Diff(w, got, cmp.AllowUnexported(want{})); d != "" {
		t.Errorf("coverage information (-want +got):\n%s\nfull: %+v", d, ci)
	}
}

func topics(r *hookstest.Response) []string {
	var out []string
	for _, c := range r.Cards {
		src := c["source"].(map[string]any)
		out = append(out, src["topic"].(map[string]any)["code"].(string))
	}
	return out
}

func TestCallOutcomes(t *testing.T) {
	npiPractitioner := map[string]any{"resourceType": "Practitioner", "id": "dr1",
		"identifier": []any{map[string]any{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1122334455"}}}
	cancelled := cov()
	cancelled["status"] = "cancelled"
	ended := cov()
	ended["period"] = map[string]any{"start": "2020-01-01", "end": "2021-01-01"}
	other := cov()
	other["beneficiary"] = map[string]any{"reference": "Patient/someone-else"}
	noMember := cov()
	delete(noMember, "subscriberId")

	tests := []struct {
		name   string
		spec   callSpec
		want   want
		topics []string // card topics, in order
	}{
		{"covered without PA", callSpec{orders: []map[string]any{sr("o1", cpt, "99213")}},
			want{covered: "covered", pa: "no-auth"}, nil},
		{"red flag diagnosis: covered, PA, no documentation", callSpec{orders: []map[string]any{sr("o1", cpt, "72148", "M51.16")}},
			want{covered: "covered", pa: "auth-needed"}, nil},
		{"conditional with documentation and DTR questionnaire", callSpec{orders: []map[string]any{sr("o1", cpt, "72148")}},
			want{covered: "conditional", pa: "auth-needed", doc: []string{"clinical"}, questionn: true},
			[]string{"coverage-info", "guideline", "guideline", "guideline"}},
		{"not covered, alternative proposed", callSpec{orders: []map[string]any{dr("o1", "K0861")}},
			want{covered: "not-covered"}, []string{"therapy-alternatives-opt"}},
		{"gold-carded for everyone", callSpec{orders: []map[string]any{sr("o1", cpt, "97161")}},
			want{covered: "covered", pa: "satisfied", satisfied: true, reasons: []string{"gold-card"}}, nil},
		{"gold-carded provider", callSpec{orders: []map[string]any{sr("o1", hcpcs, "E0601", "G47.33")},
			prefetch: map[string]any{"practitioners": searchset(npiPractitioner)}},
			want{covered: "conditional", pa: "satisfied", doc: []string{"clinical"}, satisfied: true, reasons: []string{"gold-card"}, questionn: true}, []string{"coverage-info", "guideline", "guideline"}},
		{"provider not gold-carded", callSpec{orders: []map[string]any{sr("o1", hcpcs, "E0601", "G47.33")}},
			want{covered: "conditional", pa: "auth-needed", doc: []string{"clinical"}, questionn: true}, []string{"coverage-info", "guideline", "guideline", "guideline"}},
		{"what-if call: no unsolicited determination", callSpec{orders: []map[string]any{sr("o1", cpt, "97161")},
			config: map[string]any{"unsolicited-determ": false}},
			want{covered: "covered", pa: "auth-needed"}, nil},
		{"companion order suggested", callSpec{orders: []map[string]any{sr("o1", cpt, "27447")}},
			want{covered: "conditional", pa: "auth-needed", doc: []string{"clinical"}}, []string{"clinical-reminder", "guideline"}},
		{"unknown code: reviewed on request", callSpec{orders: []map[string]any{sr("o1", cpt, "00001")}},
			want{covered: "covered", pa: "auth-needed"}, nil},
		{"patient not found", callSpec{orders: []map[string]any{sr("o1", cpt, "99213")}, prefetch: map[string]any{"patient": nil}},
			want{covered: "not-covered", reasons: []string{"no-member-found"}}, nil},
		{"coverage without member id", callSpec{orders: []map[string]any{sr("o1", cpt, "99213")}, prefetch: map[string]any{"coverage": searchset(noMember)}},
			want{covered: "not-covered", reasons: []string{"no-member-found"}}, nil},
		{"coverage cancelled", callSpec{orders: []map[string]any{sr("o1", cpt, "99213")}, prefetch: map[string]any{"coverage": searchset(cancelled)}},
			want{covered: "not-covered", reasons: []string{"no-active-coverage"}}, nil},
		{"coverage ended", callSpec{orders: []map[string]any{sr("o1", cpt, "99213")}, prefetch: map[string]any{"coverage": searchset(ended)}},
			want{covered: "not-covered", reasons: []string{"no-active-coverage"}}, nil},
		{"coverage of another patient", callSpec{orders: []map[string]any{sr("o1", cpt, "99213")}, prefetch: map[string]any{"coverage": searchset(other)}},
			want{covered: "not-covered", reasons: []string{"coverage-not-found"}}, nil},
		{"client's FHIR query failed (OperationOutcome in prefetch)", callSpec{orders: []map[string]any{sr("o1", cpt, "99213")},
			prefetch: map[string]any{"coverage": map[string]any{"resourceType": "OperationOutcome", "issue": []any{map[string]any{"severity": "error", "code": "exception"}}}}},
			want{covered: "indeterminate", reasons: []string{"technical"}}, nil},
		{"order-select: no documentation asked", callSpec{hook: OrderSelect, orders: []map[string]any{sr("o1", cpt, "72148")}},
			want{covered: "conditional", pa: "auth-needed"}, []string{"guideline", "guideline"}},
		{"appointment-book", callSpec{hook: AppointmentBook, orders: []map[string]any{{
			"resourceType": "Appointment", "id": "a1", "status": "proposed",
			"serviceType": []any{map[string]any{"coding": []any{map[string]any{"system": cpt, "code": "70551"}}}},
			"participant": []any{map[string]any{"actor": map[string]any{"reference": "Patient/p1"}, "status": "needs-action"}},
		}}}, want{covered: "covered", pa: "auth-needed"}, nil},
		{"order-dispatch", callSpec{hook: OrderDispatch, orders: []map[string]any{sr("o1", cpt, "99213")}},
			want{covered: "covered", pa: "no-auth"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rec := newTestService(t, nil)
			body := tt.spec.body(t)
			hook := tt.spec.hook
			if hook == "" {
				hook = OrderSign
			}
			ans, err := s.Call(context.Background(), ServiceID(hook), Caller{Tenant: "t1"}, body)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			r := hookstest.Check(t, crdVersion22, hook, body, ans.Body)
			if len(r.SystemActions) != len(tt.spec.orders) {
				t.Fatalf("got %d system actions, want one per order (%d)", len(r.SystemActions), len(tt.spec.orders))
			}
			ref := tt.spec.orders[0]["resourceType"].(string) + "/" + tt.spec.orders[0]["id"].(string)
			cis := r.CoverageInfo[ref]
			if len(cis) != 1 {
				t.Fatalf("%s: got %d coverage-information extensions, want 1", ref, len(cis))
			}
			checkCI(t, cis[0], tt.want)
			if d := cmp.Diff(tt.topics, topics(r)); d != "" {
				t.Errorf("card topics (-want +got):\n%s", d)
			}
			if len(rec.assertions) != 1 || rec.assertions[0].ID != cis[0].AssertionID || rec.assertions[0].Tenant != "t1" {
				t.Fatalf("assertions stored: %+v", rec.assertions)
			}
			a := rec.assertions[0]
			if a.PASatisfied != tt.want.satisfied || a.SatisfiedPAID != cis[0].SatisfiedPAID || a.Covered != tt.want.covered || a.Order != ref {
				t.Errorf("stored assertion %+v does not match the extension %+v", a, cis[0])
			}
			if len(rec.calls) != 1 || rec.calls[0].Status != 200 || rec.calls[0].HookInstance == "" {
				t.Errorf("call record: %+v", rec.calls)
			}
		})
	}
}

func TestCallErrors(t *testing.T) {
	two := searchset(cov(), func() map[string]any { c := cov(); c["id"] = "cov2"; return c }())
	tests := []struct {
		name    string
		service string
		body    []byte
		payers  []coverage.PayerID
		status  int
	}{
		{"not JSON", "order-sign-crd", []byte(`{"hook":`), nil, 400},
		{"array", "order-sign-crd", []byte(`[]`), nil, 400},
		{"unknown service", "nope", callSpec{}.body(t), nil, 404},
		{"hook of another service", "order-select-crd", callSpec{}.body(t), nil, 400},
		{"no hookInstance", "order-sign-crd", edit(t, callSpec{}.body(t), func(m map[string]any) { delete(m, "hookInstance") }), nil, 400},
		{"no context", "order-sign-crd", edit(t, callSpec{}.body(t), func(m map[string]any) { delete(m, "context") }), nil, 400},
		{"no patientId", "order-sign-crd", callSpec{dropCtx: []string{"patientId"}}.body(t), nil, 400},
		{"no draftOrders", "order-sign-crd", callSpec{dropCtx: []string{"draftOrders"}}.body(t), nil, 400},
		{"draftOrders not a Bundle", "order-sign-crd", callSpec{extraCtx: map[string]any{"draftOrders": map[string]any{"resourceType": "List"}}}.body(t), nil, 400},
		{"draftOrders wrong type", "order-sign-crd", callSpec{extraCtx: map[string]any{"draftOrders": "x"}}.body(t), nil, 400},
		{"fhirAuthorization without fhirServer", "order-sign-crd", edit(t, callSpec{}.body(t), func(m map[string]any) {
			m["fhirAuthorization"] = map[string]any{"access_token": "x"}
		}), nil, 400},
		{"fhirServer not a URL", "order-sign-crd", edit(t, callSpec{}.body(t), func(m map[string]any) { m["fhirServer"] = "file:///etc" }), nil, 400},
		{"hook-13: no coverage", "order-sign-crd", callSpec{orders: []map[string]any{sr("o1", cpt, "99213")}, prefetch: map[string]any{"coverage": nil}}.body(t), nil, 400},
		{"hook-13: empty coverage search", "order-sign-crd", callSpec{orders: []map[string]any{sr("o1", cpt, "99213")}, prefetch: map[string]any{"coverage": searchset()}}.body(t), nil, 400},
		{"hook-13: two coverages", "order-sign-crd", callSpec{orders: []map[string]any{sr("o1", cpt, "99213")}, prefetch: map[string]any{"coverage": two}}.body(t), nil, 400},
		{"hook-13: another payer", "order-sign-crd", callSpec{orders: []map[string]any{sr("o1", cpt, "99213")}}.body(t),
			[]coverage.PayerID{{System: "urn:oid:2.16.840.1.113883.6.300", Value: "99999"}}, 400},
		{"412: nothing prefetched, no fhirServer", "order-sign-crd", callSpec{orders: []map[string]any{sr("o1", cpt, "99213")}, noPre: true}.body(t), nil, 412},
		{"412: dispatched order unobtainable", "order-dispatch-crd", edit(t, callSpec{hook: OrderDispatch, orders: []map[string]any{sr("o1", cpt, "99213")}}.body(t),
			func(m map[string]any) { delete(m["prefetch"].(map[string]any), "serviceRequests") }), nil, 412},
		{"no dispatched orders", "order-dispatch-crd", callSpec{hook: OrderDispatch, dropCtx: []string{"dispatchedOrders"}}.body(t), nil, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rec := newTestService(t, func(c *Config) { c.PayerIDs = tt.payers })
			_, err := s.Call(context.Background(), tt.service, Caller{}, tt.body)
			var he *fhir.Error
			if !errors.As(err, &he) {
				t.Fatalf("got %v, want a *fhir.Error", err)
			}
			if he.Kind.Status() != tt.status {
				t.Errorf("status %d (%s), want %d", he.Kind.Status(), he.Message, tt.status)
			}
			if len(rec.assertions) != 0 {
				t.Errorf("a failed call stored assertions")
			}
			if len(rec.calls) != 1 || rec.calls[0].Status != tt.status {
				t.Errorf("call record: %+v", rec.calls)
			}
		})
	}
}

func TestDispatchedOrderKnownAbsent(t *testing.T) {
	s, rec := newTestService(t, nil)
	body := callSpec{hook: OrderDispatch, orders: []map[string]any{sr("o1", cpt, "99213")}, prefetch: map[string]any{"serviceRequests": nil}}.body(t)
	ans, err := s.Call(context.Background(), "order-dispatch-crd", Caller{}, body)
	if err != nil {
		t.Fatalf("a null prefetch key means no data, not a failure: %v", err)
	}
	r := hookstest.Check(t, crdVersion22, OrderDispatch, body, ans.Body)
	if len(r.SystemActions) != 0 || rec.calls[0].Fetched != 0 {
		t.Errorf("want no actions and no queries, got %s (fetched %d)", ans.Body, rec.calls[0].Fetched)
	}
}

func TestPayerMatching(t *testing.T) {
	withID := cov()
	withID["payor"] = []any{map[string]any{"reference": "Organization/payer1", "identifier": map[string]any{"system": "http://example.org/payers", "value": "P1"}}}
	viaOrg := cov()
	org := map[string]any{"resourceType": "Organization", "id": "payer1",
		"identifier": []any{map[string]any{"system": "http://example.org/payers", "value": "P1"}}}
	tests := []struct {
		name   string
		payers []coverage.PayerID
		pre    map[string]any
		ok     bool
	}{
		{"identifier on the reference, system|value", []coverage.PayerID{{System: "http://example.org/payers", Value: "P1"}}, map[string]any{"coverage": searchset(withID)}, true},
		{"bare value matches any system", []coverage.PayerID{{Value: "P1"}}, map[string]any{"coverage": searchset(withID)}, true},
		{"identifier on the prefetched Organization", []coverage.PayerID{{Value: "P1"}}, map[string]any{"coverage": searchset(viaOrg), "organizations": searchset(org)}, true},
		{"other system", []coverage.PayerID{{System: "http://other", Value: "P1"}}, map[string]any{"coverage": searchset(withID)}, false},
		{"payor without identifier", []coverage.PayerID{{Value: "P1"}}, nil, false},
		{"no payers configured: all served", nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestService(t, func(c *Config) { c.PayerIDs = tt.payers })
			_, err := s.Call(context.Background(), "order-sign-crd", Caller{}, callSpec{orders: []map[string]any{sr("o1", cpt, "99213")}, prefetch: tt.pre}.body(t))
			if got := err == nil; got != tt.ok {
				t.Errorf("served = %v (%v), want %v", got, err, tt.ok)
			}
		})
	}
}

func TestConfiguration(t *testing.T) {
	orders := []map[string]any{sr("o1", cpt, "72148"), dr("o2", "K0861"), sr("o3", cpt, "27447")}
	tests := []struct {
		name    string
		config  map[string]any
		actions int
		topics  []string
	}{
		{"defaults", nil, 3, []string{"coverage-info", "guideline", "guideline", "guideline", "therapy-alternatives-opt", "clinical-reminder", "guideline"}},
		{"coverage-info off", map[string]any{"coverage-info": false}, 0, []string{"guideline", "guideline", "guideline", "therapy-alternatives-opt", "clinical-reminder", "guideline"}},
		{"guidelines and alternatives off", map[string]any{"guideline": false, "therapy-alternatives-opt": false}, 3, []string{"coverage-info", "clinical-reminder"}},
		{"max-cards", map[string]any{"max-cards": 2}, 3, []string{"coverage-info", "guideline"}},
		{"unknown codes and wrong types ignored", map[string]any{"no-such-option": true, "coverage-info": "false", "max-cards": "two"}, 3,
			[]string{"coverage-info", "guideline", "guideline", "guideline", "therapy-alternatives-opt", "clinical-reminder", "guideline"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestService(t, nil)
			body := callSpec{orders: orders, config: tt.config}.body(t)
			ans, err := s.Call(context.Background(), "order-sign-crd", Caller{}, body)
			if err != nil {
				t.Fatal(err)
			}
			r := hookstest.Check(t, crdVersion22, OrderSign, body, ans.Body)
			if len(r.SystemActions) != tt.actions {
				t.Errorf("got %d system actions, want %d", len(r.SystemActions), tt.actions)
			}
			if d := cmp.Diff(tt.topics, topics(r)); d != "" {
				t.Errorf("card topics (-want +got):\n%s", d)
			}
		})
	}
}

func TestCards(t *testing.T) {
	s, _ := newTestService(t, nil)
	body := callSpec{orders: []map[string]any{dr("o1", "K0861"), sr("o2", cpt, "27447")}}.body(t)
	ans, err := s.Call(context.Background(), "order-sign-crd", Caller{}, body)
	if err != nil {
		t.Fatal(err)
	}
	r := hookstest.Check(t, crdVersion22, OrderSign, body, ans.Body)
	byTopic := map[string]map[string]any{}
	for i, c := range r.Cards {
		byTopic[topics(r)[i]] = c
	}
	t.Run("propose alternate: one update of the order with the new code", func(t *testing.T) {
		c := byTopic["therapy-alternatives-opt"]
		sugg := c["suggestions"].([]any)
		acts := sugg[0].(map[string]any)["actions"].([]any)
		a := acts[0].(map[string]any)
		res := a["resource"].(map[string]any)
		code := res["codeCodeableConcept"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"]
		if len(sugg) != 1 || len(acts) != 1 || a["type"] != "update" || res["id"] != "o1" || code != "K0823" {
			t.Errorf("alternate card: %v", c)
		}
		if c["indicator"] != "warning" {
			t.Errorf("a not-covered order's alternative is a warning, got %v", c["indicator"])
		}
	})
	t.Run("additional orders: creates only", func(t *testing.T) {
		c := byTopic["clinical-reminder"]
		for _, sv := range c["suggestions"].([]any) {
			for _, av := range sv.(map[string]any)["actions"].([]any) {
				a := av.(map[string]any)
				if a["type"] != "create" || a["resource"].(map[string]any)["resourceType"] != "ServiceRequest" {
					t.Errorf("additional orders action: %v", a)
				}
			}
		}
		if c["selectionBehavior"] != "any" {
			t.Errorf("selectionBehavior %v", c["selectionBehavior"])
		}
	})
	t.Run("external reference: absolute links only", func(t *testing.T) {
		c := byTopic["guideline"]
		links, _ := c["links"].([]any)
		if len(links) == 0 || c["suggestions"] != nil {
			t.Errorf("external reference card: %v", c)
		}
	})
	t.Run("associated resource names the order", func(t *testing.T) {
		for _, c := range r.Cards {
			ext := c["extension"].(map[string]any)["davinci-crd.associated-resource"].([]any)
			if len(ext) != 1 {
				t.Errorf("associated-resource: %v", ext)
			}
		}
	})

	t.Run("form completion: Task with a questionnaire input", func(t *testing.T) {
		body := callSpec{orders: []map[string]any{sr("o1", cpt, "72148")}}.body(t)
		ans, err := s.Call(context.Background(), "order-sign-crd", Caller{}, body)
		if err != nil {
			t.Fatal(err)
		}
		r := hookstest.Check(t, crdVersion22, OrderSign, body, ans.Body)
		task := r.Cards[0]["suggestions"].([]any)[0].(map[string]any)["actions"].([]any)[0].(map[string]any)["resource"].(map[string]any)
		in := task["input"].([]any)[0].(map[string]any)
		if task["resourceType"] != "Task" || in["type"].(map[string]any)["text"] != "questionnaire" || in["valueCanonical"] == "" ||
			task["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] != "complete-questionnaire" {
			t.Errorf("form completion task: %v", task)
		}
	})
	t.Run("SMART app launch when a DTR app is configured", func(t *testing.T) {
		rules, err := coverage.Parse([]byte(strings.Replace(string(coverage.SampleYAML()),
			"# dtrLaunchUrl: https://dtr.payer.example.org/launch", "dtrLaunchUrl: https://dtr.payer.example.org/launch", 1)))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := newTestService(t, func(c *Config) { c.Rules = func() *coverage.Rules { return rules } })
		body := callSpec{orders: []map[string]any{sr("o1", cpt, "72148")}}.body(t)
		ans, err := s.Call(context.Background(), "order-sign-crd", Caller{}, body)
		if err != nil {
			t.Fatal(err)
		}
		r := hookstest.Check(t, crdVersion22, OrderSign, body, ans.Body)
		l := r.Cards[0]["links"].([]any)[0].(map[string]any)
		var app map[string]any
		if l["type"] != "smart" || l["url"] != "https://dtr.payer.example.org/launch" || json.Unmarshal([]byte(l["appContext"].(string)), &app) != nil {
			t.Errorf("DTR launch link: %v", l)
		}
		if app["order"] != "ServiceRequest/o1" {
			t.Errorf("appContext: %v", app)
		}
	})
	t.Run("update coverage on an administrative hook", func(t *testing.T) {
		c := cov()
		delete(c, "subscriberId")
		c["identifier"] = []any{map[string]any{"type": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}}}, "value": "M9"}}
		body := callSpec{hook: AppointmentBook, orders: []map[string]any{{"resourceType": "Appointment", "id": "a1", "status": "proposed"}},
			prefetch: map[string]any{"coverage": searchset(c)}}.body(t)
		ans, err := s.Call(context.Background(), "appointment-book-crd", Caller{}, body)
		if err != nil {
			t.Fatal(err)
		}
		r := hookstest.Check(t, crdVersion22, AppointmentBook, body, ans.Body)
		if d := cmp.Diff([]string{"insurance"}, topics(r)); d != "" {
			t.Fatalf("topics: %s", d)
		}
		res := r.Cards[0]["suggestions"].([]any)[0].(map[string]any)["actions"].([]any)[0].(map[string]any)["resource"].(map[string]any)
		if res["resourceType"] != "Coverage" || res["subscriberId"] != "M9" {
			t.Errorf("coverage update: %v", res)
		}
	})
}

func TestVersion20(t *testing.T) {
	s, _ := newTestService(t, nil)
	t.Run("requestedVersion 2.0", func(t *testing.T) {
		body := callSpec{orders: []map[string]any{sr("o1", cpt, "72148")}, version: "2.0",
			prefetch: map[string]any{"coverage": map[string]any{"resourceType": "OperationOutcome"}}}.body(t)
		ans, err := s.Call(context.Background(), "order-sign-crd", Caller{}, body)
		if err != nil {
			t.Fatal(err)
		}
		r := hookstest.Check(t, crdVersion20, OrderSign, body, ans.Body)
		checkCI(t, r.CoverageInfo["ServiceRequest/o1"][0], want{covered: "conditional", pa: "conditional", reasons: []string{"technical"}})
	})
	t.Run("systemActions present even when empty", func(t *testing.T) {
		body := callSpec{orders: []map[string]any{sr("o1", cpt, "72148")}, version: "2.0", config: map[string]any{"coverage-info": false}}.body(t)
		ans, err := s.Call(context.Background(), "order-sign-crd", Caller{}, body)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(ans.Body), `"systemActions":[]`) {
			t.Errorf("2.0.1 mode response lacks systemActions: %s", ans.Body)
		}
		r := hookstest.Check(t, crdVersion20, OrderSign, body, ans.Body)
		for _, c := range r.Cards {
			if sys := c["source"].(map[string]any)["topic"].(map[string]any)["system"]; sys != crdTempSystem {
				t.Errorf("2.0.1 topic system %v", sys)
			}
		}
	})
	t.Run("2.2 omits an empty systemActions", func(t *testing.T) {
		body := callSpec{orders: []map[string]any{sr("o1", cpt, "72148")}, config: map[string]any{"coverage-info": false}}.body(t)
		ans, err := s.Call(context.Background(), "order-sign-crd", Caller{}, body)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(ans.Body), `systemActions`) {
			t.Errorf("empty systemActions sent in 2.2 mode")
		}
	})
	t.Run("configured default 2.0", func(t *testing.T) {
		s, _ := newTestService(t, func(c *Config) { c.DefaultVersion = "2.0" })
		body := callSpec{orders: []map[string]any{sr("o1", cpt, "99213")}}.body(t)
		ans, err := s.Call(context.Background(), "order-sign-crd", Caller{}, body)
		if err != nil {
			t.Fatal(err)
		}
		r := hookstest.Check(t, crdVersion20, OrderSign, body, ans.Body)
		if r.CoverageInfo["ServiceRequest/o1"][0].ExpiryDate != "" {
			t.Errorf("expiry-date in 2.0 mode")
		}
	})
}

func TestUnchangedCoverageInfoNotResent(t *testing.T) {
	s, _ := newTestService(t, nil)
	body := callSpec{orders: []map[string]any{sr("o1", cpt, "99213"), sr("o2", cpt, "72148")}}.body(t)
	ans, err := s.Call(context.Background(), "order-sign-crd", Caller{}, body)
	if err != nil {
		t.Fatal(err)
	}
	// The EHR stores the annotated orders and signs them again.
	var resp struct{ SystemActions []Action }
	if err := json.Unmarshal(ans.Body, &resp); err != nil {
		t.Fatal(err)
	}
	var annotated []map[string]any
	for _, a := range resp.SystemActions {
		var m map[string]any
		if err := json.Unmarshal(a.Resource, &m); err != nil {
			t.Fatal(err)
		}
		annotated = append(annotated, m)
	}
	annotated[1]["code"] = sr("o2", cpt, "99213")["code"] // o2 changed: news
	body = callSpec{orders: annotated}.body(t)
	ans, err = s.Call(context.Background(), "order-sign-crd", Caller{}, body)
	if err != nil {
		t.Fatal(err)
	}
	r := hookstest.Check(t, crdVersion22, OrderSign, body, ans.Body)
	if len(r.SystemActions) != 1 || r.CoverageInfo["ServiceRequest/o2"] == nil {
		t.Errorf("want one update, for the changed o2 only; got %v", r.CoverageInfo)
	}
	if n := len(r.CoverageInfo["ServiceRequest/o2"]); n != 1 {
		t.Errorf("o2 carries %d coverage-information extensions, want the old one replaced", n)
	}
}

func TestDispatchShapes(t *testing.T) {
	order := sr("o1", cpt, "99213")
	tests := []struct {
		name string
		ctx  map[string]any
		pre  map[string]any
	}{
		{"1.1: dispatchedOrders + fulfillmentTasks", map[string]any{"dispatchedOrders": []any{"ServiceRequest/o1"},
			"fulfillmentTasks": []any{map[string]any{"resourceType": "Task", "id": "t1", "status": "requested", "intent": "order", "focus": map[string]any{"reference": "ServiceRequest/o1"}}}}, nil},
		{"1.0: order + task", map[string]any{"dispatchedOrders": nil, "order": "ServiceRequest/o1",
			"task": map[string]any{"resourceType": "Task", "id": "t1", "status": "requested", "intent": "order"}},
			map[string]any{"serviceRequests": nil, "order": order}},
		{"kebab-case fulfillment-tasks", map[string]any{"fulfillment-tasks": []any{map[string]any{"resourceType": "Task"}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestService(t, nil)
			spec := callSpec{hook: OrderDispatch, orders: []map[string]any{order}, extraCtx: tt.ctx, prefetch: tt.pre}
			body := spec.body(t)
			if tt.ctx["dispatchedOrders"] == nil && tt.ctx["order"] != nil {
				body = edit(t, body, func(m map[string]any) { delete(m["context"].(map[string]any), "dispatchedOrders") })
			}
			ans, err := s.Call(context.Background(), "order-dispatch-crd", Caller{}, body)
			if err != nil {
				t.Fatal(err)
			}
			r := hookstest.Check(t, crdVersion22, OrderDispatch, body, ans.Body)
			if len(r.SystemActions) != 1 || len(r.CoverageInfo["ServiceRequest/o1"]) != 1 {
				t.Errorf("want one coverage-information update of ServiceRequest/o1, got %s", ans.Body)
			}
		})
	}
}

func TestEHRFallback(t *testing.T) {
	ehr := newFakeEHR(t)
	p, _ := json.Marshal(patient())
	c, _ := json.Marshal(cov())
	o, _ := json.Marshal(sr("o9", cpt, "99213"))
	ehr.put(string(p))
	ehr.put(string(c))
	ehr.put(string(o))

	t.Run("missing prefetch fetched with the bearer token", func(t *testing.T) {
		s, rec := newTestService(t, nil)
		body := callSpec{orders: []map[string]any{sr("o1", cpt, "99213")}, noPre: true, server: ehr.URL, token: "tok-123"}.body(t)
		ans, err := s.Call(context.Background(), "order-sign-crd", Caller{}, body)
		if err != nil {
			t.Fatal(err)
		}
		r := hookstest.Check(t, crdVersion22, OrderSign, body, ans.Body)
		checkCI(t, r.CoverageInfo["ServiceRequest/o1"][0], want{covered: "covered", pa: "no-auth"})
		ehr.mu.Lock()
		defer ehr.mu.Unlock()
		for _, a := range ehr.auth {
			if a != "Bearer tok-123" {
				t.Errorf("EHR saw Authorization %q", a)
			}
		}
		if rec.calls[0].Fetched != 2 || rec.calls[0].FetchFailed != 0 {
			t.Errorf("fetched %d (failed %d), want 2 queries: patient and coverage", rec.calls[0].Fetched, rec.calls[0].FetchFailed)
		}
	})
	t.Run("dispatched order fetched", func(t *testing.T) {
		s, _ := newTestService(t, nil)
		body := callSpec{hook: OrderDispatch, noPre: true, server: ehr.URL, token: "x",
			extraCtx: map[string]any{"dispatchedOrders": []any{"ServiceRequest/o9", "ServiceRequest/missing"}}}.body(t)
		ans, err := s.Call(context.Background(), "order-dispatch-crd", Caller{}, body)
		if err != nil {
			t.Fatal(err)
		}
		r := hookstest.Check(t, crdVersion22, OrderDispatch, body, ans.Body)
		if len(r.SystemActions) != 1 || r.CoverageInfo["ServiceRequest/o9"] == nil {
			t.Errorf("want ServiceRequest/o9 annotated: %s", ans.Body)
		}
	})
	failing := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"EHR error", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }},
		{"EHR refuses the token", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }},
		{"EHR answers garbage", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>")) }},
		{"EHR too slow", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }},
	}
	for _, tt := range failing {
		t.Run(tt.name, func(t *testing.T) {
			bad := newFakeEHR(t)
			bad.handler = tt.handler
			s, rec := newTestService(t, func(c *Config) { c.FetchTimeout = 200 * time.Millisecond })
			body := callSpec{orders: []map[string]any{sr("o1", cpt, "99213")}, noPre: true, server: bad.URL, token: "x"}.body(t)
			start := time.Now()
			ans, err := s.Call(context.Background(), "order-sign-crd", Caller{}, body)
			if err != nil {
				t.Fatalf("an EHR failure must not fail the call: %v", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("call took %v despite a 200 ms fetch deadline", d)
			}
			r := hookstest.Check(t, crdVersion22, OrderSign, body, ans.Body)
			ci := r.CoverageInfo["ServiceRequest/o1"]
			if len(ci) != 1 {
				t.Fatalf("want coverage information for the order: %s", ans.Body)
			}
			checkCI(t, ci[0], want{covered: "indeterminate", reasons: []string{"technical"}})
			if rec.calls[0].Outcome != "technical" || rec.calls[0].FetchFailed == 0 {
				t.Errorf("call record: %+v", rec.calls[0])
			}
		})
	}
}

func TestDiscovery(t *testing.T) {
	s, _ := newTestService(t, nil)
	var got struct {
		Services []discoveryService `json:"services"`
	}
	if err := json.Unmarshal(s.Discovery(), &got); err != nil {
		t.Fatal(err)
	}
	var ig struct {
		Services []struct {
			Hook     string            `json:"hook"`
			Prefetch map[string]string `json:"prefetch"`
		} `json:"services"`
	}
	if err := json.Unmarshal(fixture(t, "ig/CRDServices.json"), &ig); err != nil {
		t.Fatal(err)
	}
	standard := map[string]map[string]string{}
	for _, sv := range ig.Services {
		standard[sv.Hook] = sv.Prefetch
	}
	var hooks []string
	for _, sv := range got.Services {
		hooks = append(hooks, sv.Hook)
		t.Run(sv.Hook, func(t *testing.T) {
			if sv.ID != ServiceID(sv.Hook) || sv.Description == "" || sv.Title == "" {
				t.Errorf("service %+v", sv)
			}
			if d := cmp.Diff(standard[sv.Hook], sv.Prefetch); d != "" {
				t.Errorf("prefetch differs from the CRD standard prefetch (-IG +ours):\n%s", d)
			}
			if len(sv.Extension.Versions) == 0 || !slices.Contains(sv.Extension.Versions, "2.2") {
				t.Errorf("davinci-crd.version %v", sv.Extension.Versions)
			}
			codes, names, descs := map[string]bool{}, map[string]bool{}, map[string]bool{}
			for _, o := range sv.Extension.Options {
				if codes[o.Code] || names[o.Name] || descs[o.Description] {
					t.Errorf("dev-8: option %q repeats a code, name or description", o.Code)
				}
				codes[o.Code], names[o.Name], descs[o.Description] = true, true, true
				if o.Default == nil || (o.Type != "boolean" && o.Type != "integer") {
					t.Errorf("dev-4: option %+v", o)
				}
			}
			if !codes[typeCoverageInfo] {
				t.Errorf("coverage-info option missing")
			}
		})
	}
	if d := cmp.Diff(Hooks, hooks); d != "" {
		t.Errorf("hooks: %s", d)
	}
	// Every card type a hook can emit has an option to turn it off (dev-5).
	emits := map[string][]string{
		OrderSign:       {typeCoverageInfo, typeGuideline, typeAlternatives, typeReminder},
		OrderSelect:     {typeGuideline, typeAlternatives, typeReminder},
		AppointmentBook: {typeCoverageInfo, typeGuideline, typeInsurance},
		OrderDispatch:   {typeCoverageInfo, typeGuideline, typeInsurance},
		EncounterStart:  {typeInsurance},
	}
	for hook, types := range emits {
		for _, typ := range types {
			if !slices.Contains(optionsFor(hook), typ) {
				t.Errorf("%s emits %s cards but offers no option for them", hook, typ)
			}
		}
	}
}

func TestCoverageInfoInvariants(t *testing.T) {
	base := func() coverageInfo {
		return coverageInfo{Coverage: refTo("Coverage/c"), Date: "2026-01-01", AssertionID: "a1"}
	}
	tests := []struct {
		name string
		in   func(*coverageInfo)
		want func(*coverageInfo)
	}{
		{"q1: questionnaire without doc-needed dropped", func(c *coverageInfo) { c.Covered, c.Questionnaire = "covered", []string{"q"} },
			func(c *coverageInfo) { c.Covered = "covered" }},
		{"q2: not-covered drops pa-needed", func(c *coverageInfo) { c.Covered, c.PANeeded = "not-covered", "auth-needed" },
			func(c *coverageInfo) { c.Covered = "not-covered" }},
		{"q3+q6: conditional gets info-needed OTH and a reason", func(c *coverageInfo) { c.Covered = "conditional" },
			func(c *coverageInfo) {
				c.Covered, c.InfoNeeded, c.Reasons = "conditional", []string{"OTH"}, textReasons("why")
			}},
		{"q4: no withpa without PA", func(c *coverageInfo) {
			c.Covered, c.PANeeded, c.DocNeeded, c.DocPurpose, c.Reasons = "covered", "no-auth", []string{"clinical"}, []string{"withpa", "withclaim"}, textReasons("r")
		}, func(c *coverageInfo) {
			c.Covered, c.PANeeded, c.DocNeeded, c.DocPurpose, c.Reasons = "covered", "no-auth", []string{"clinical"}, []string{"withclaim"}, textReasons("r")
		}},
		{"q5: satisfied-pa-id only when satisfied", func(c *coverageInfo) { c.Covered, c.PANeeded, c.SatisfiedPAID = "covered", "auth-needed", "X" },
			func(c *coverageInfo) { c.Covered, c.PANeeded = "covered", "auth-needed" }},
		{"q8: doc-purpose gets a reason", func(c *coverageInfo) {
			c.Covered, c.DocNeeded, c.DocPurpose = "covered", []string{"admin"}, []string{"withclaim"}
		}, func(c *coverageInfo) {
			c.Covered, c.DocNeeded, c.DocPurpose, c.Reasons = "covered", []string{"admin"}, []string{"withclaim"}, textReasons("why")
		}},
		{"q9: indeterminate gets a reason", func(c *coverageInfo) { c.Covered = "indeterminate" },
			func(c *coverageInfo) { c.Covered, c.Reasons = "indeterminate", textReasons("why") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := base(), base()
			tt.in(&got)
			tt.want(&want)
			got.normalize(crdVersion22, "why")
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("normalize (-want +got):\n%s", d)
			}
			if err := got.check(); err != nil {
				t.Errorf("normalized extension fails: %v", err)
			}
		})
	}
	t.Run("check finds each violation", func(t *testing.T) {
		bad := []func(*coverageInfo){
			func(c *coverageInfo) { c.Covered, c.Questionnaire = "covered", []string{"q"} },
			func(c *coverageInfo) { c.Covered, c.PANeeded = "not-covered", "no-auth" },
			func(c *coverageInfo) { c.Covered = "conditional" },
			func(c *coverageInfo) {
				c.Covered, c.PANeeded, c.DocNeeded, c.DocPurpose, c.Reasons = "covered", "satisfied", []string{"clinical"}, []string{"withpa"}, textReasons("r")
				c.SatisfiedPAID = "x"
			},
			func(c *coverageInfo) { c.Covered, c.SatisfiedPAID = "covered", "x" },
			func(c *coverageInfo) { c.Covered, c.InfoNeeded = "covered", []string{"OTH"} },
			func(c *coverageInfo) {
				c.Covered, c.Reasons = "covered", []fhirCC{{Coding: []fhirCoding{{System: "http://x", Code: "y"}}}}
			},
			func(c *coverageInfo) {
				c.Covered, c.DocNeeded, c.DocPurpose = "covered", []string{"admin"}, []string{"withclaim"}
			},
			func(c *coverageInfo) { c.Covered = "indeterminate" },
		}
		for i, f := range bad {
			c := base()
			f(&c)
			if c.check() == nil {
				t.Errorf("case %d: violation not found: %+v", i, c)
			}
		}
	})
}

func TestWithExtensions(t *testing.T) {
	ci := json.RawMessage(`{"url":"` + coverageInfoURL + `","extension":[]}`)
	tests := []struct{ name, in, want string }{
		{"no extension member", `{"resourceType":"ServiceRequest","id":"1"}`,
			`{"extension":[` + string(ci) + `],"resourceType":"ServiceRequest","id":"1"}`},
		{"other extensions kept", `{"resourceType":"X", "extension": [ {"url":"a"} ] ,"id":"1"}`,
			`{"resourceType":"X", "extension":[{"url":"a"},` + string(ci) + `] ,"id":"1"}`},
		{"old coverage information replaced", `{"resourceType":"X","extension":[{"url":"` + coverageInfoURL + `","extension":[{"url":"old"}]},{"url":"b"}]}`,
			`{"resourceType":"X","extension":[{"url":"b"},` + string(ci) + `]}`},
		{"empty array", `{"resourceType":"X","extension":[]}`, `{"resourceType":"X","extension":[` + string(ci) + `]}`},
		{"nested extension members untouched", `{"resourceType":"X","code":{"extension":[{"url":"n"}]}}`,
			`{"extension":[` + string(ci) + `],"resourceType":"X","code":{"extension":[{"url":"n"}]}}`},
		{"empty object", `{}`, `{"extension":[` + string(ci) + `]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := withExtensions(json.RawMessage(tt.in), coverageInfoURL, []json.RawMessage{ci})
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("not JSON: %s", got)
			}
		})
	}
	if _, err := withExtensions(json.RawMessage(`{"extension":{}}`), coverageInfoURL, nil); err == nil {
		t.Errorf("a non-array extension member must fail")
	}
}

func TestFeedback(t *testing.T) {
	s, rec := newTestService(t, nil)
	for _, f := range []string{"19-example-suggestion-accepted.json", "20-example-overridden-guidance-without-overridereason.json", "21-example-overridden-guidance-with-overridereason.json"} {
		t.Run(f, func(t *testing.T) {
			if err := s.Feedback(context.Background(), "order-sign-crd", Caller{}, fixture(t, "cdshooks/"+f)); err != nil {
				t.Fatal(err)
			}
		})
	}
	if len(rec.feedback) != 3 || rec.feedback[0].Outcome != "accepted" || len(rec.feedback[0].AcceptedSuggestions) != 1 ||
		rec.feedback[2].OverrideReason == "" || rec.feedback[2].OutcomeTimestamp.IsZero() {
		t.Errorf("feedback stored: %+v", rec.feedback)
	}
	for _, bad := range []string{`{}`, `{"feedback":[{"outcome":"accepted"}]}`, `{"feedback":[{"card":"x","outcome":"maybe"}]}`, `nope`} {
		if err := s.Feedback(context.Background(), "order-sign-crd", Caller{}, []byte(bad)); fhir.KindOf(err) != fhir.Invalid {
			t.Errorf("feedback %s: got %v, want 400", bad, err)
		}
	}
}

// CRD cards name the criteria an order's data does not show, with the
// documents that show them; doc-needed follows.
func TestCriteriaCard(t *testing.T) {
	s, _ := newTestService(t, nil)
	body := callSpec{orders: []map[string]any{sr("o1", cpt, "72148")}}.body(t)
	ans, err := s.Call(context.Background(), "order-sign-crd", Caller{}, body)
	if err != nil {
		t.Fatal(err)
	}
	r := hookstest.Check(t, crdVersion22, OrderSign, body, ans.Body)
	detail := ""
	for _, c := range r.Cards {
		if s, _ := c["summary"].(string); strings.Contains(s, "coverage criteria") {
			detail, _ = c["detail"].(string)
		}
	}
	if detail == "" {
		t.Fatalf("no criteria card among %d cards", len(r.Cards))
	}
	for _, want := range []string{"(conservative-therapy)", "(progress-note)", "(low-back-pain)", "11506-3", "mri-lumbar"} {
		if !strings.Contains(detail, want) {
			t.Errorf("criteria card does not name %s:\n%s", want, detail)
		}
	}
}
