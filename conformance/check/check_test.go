package check

import (
	"strings"
	"testing"
)

func rules(fs []Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Rule)
	}
	return strings.Join(out, " ")
}

// TestHookResponseFindsBrokenRules: each broken rule of a CDS Hooks answer
// is found and named.
func TestHookResponseFindsBrokenRules(t *testing.T) {
	body, err := Decode([]byte(`{"cards":[{"summary":"","indicator":"loud","source":{},
		"suggestions":[{"label":"x","actions":[]}],
		"links":[{"label":"l","url":"/relative","type":"absolute","appContext":"x"}]}],
		"extra":null}`))
	if err != nil {
		t.Fatal(err)
	}
	got := rules(HookResponse(body, "order-sign", "2.2", true))
	for _, want := range []string{"CRD (Inferno 3.x.05)", "CH-02", "CH-14", "CH-14/resp-4", "CRD resp-5", "CH-15", "CRD resp-3", "CH-17 (Inferno 3.x.06)", "CH-19"} {
		if !strings.Contains(got, want) {
			t.Errorf("rule %q not found in %s", want, got)
		}
	}
	if fs := HookResponse(map[string]any{"cards": []any{}}, "order-sign", "2.2", false); len(fs) != 0 {
		t.Errorf("an empty answer without coverage expected: %v", fs)
	}
}

// TestCoverageFindsBrokenInvariants: the coverage-information invariants
// and resp-37.
func TestCoverageFindsBrokenInvariants(t *testing.T) {
	req, _ := Decode([]byte(`{"hook":"order-sign","context":{"draftOrders":{"resourceType":"Bundle","entry":[
		{"resource":{"resourceType":"ServiceRequest","id":"1","status":"draft"}}]}}}`))
	body, _ := Decode([]byte(`{"cards":[],"systemActions":[{"type":"update","description":"d","resource":
		{"resourceType":"ServiceRequest","id":"1","status":"active","extension":[{"url":"` + CoverageInfoURL + `","extension":[
		{"url":"coverage","valueReference":{"reference":"Coverage/c"}},{"url":"covered","valueCode":"not-covered"},
		{"url":"pa-needed","valueCode":"auth-needed"},{"url":"date","valueDate":"2026-01-01"},
		{"url":"coverage-assertion-id","valueString":"a1"},{"url":"questionnaire","valueCanonical":"http://q"},
		{"url":"bogus","valueString":"x"}]}]}}]}`))
	cis, fs := Coverage(body, CoverageOptions{Version: "2.2", Hook: "order-sign", Originals: Originals(req)})
	if len(cis) != 1 || cis[0].Ref != "ServiceRequest/1" || cis[0].Covered != "not-covered" {
		t.Fatalf("coverage info %+v", cis)
	}
	got := rules(fs)
	for _, want := range []string{"crd-ci-q1", "crd-ci-q2", "CRD resp-37", "CRD ext-coverage-information"} {
		if !strings.Contains(got, want) {
			t.Errorf("rule %q not found in %s", want, got)
		}
	}
	if got := InScope(req); len(got) != 1 || got[0] != "ServiceRequest/1" {
		t.Errorf("InScope = %v", got)
	}
}

// TestPASResponseFindsBrokenRules: a PAS Response Bundle with a dangling
// reference, a queued outcome, a duplicated and an unsubmitted item.
func TestPASResponseFindsBrokenRules(t *testing.T) {
	b, _ := Decode([]byte(`{"resourceType":"Bundle","type":"batch","entry":[
		{"fullUrl":"urn:uuid:1","resource":{"resourceType":"ClaimResponse","status":"active","use":"claim","outcome":"queued",
		 "patient":{"reference":"Patient/missing"},"insurer":{"reference":"urn:uuid:1"},"request":{"reference":"Claim/x"},
		 "created":"2026-01-01","type":{},
		 "item":[{"itemSequence":1,"adjudication":[{"category":{"coding":[{"code":"submitted"}]}}]},
		         {"itemSequence":1,"adjudication":[{"category":{"coding":[{"code":"submitted"}]}}]},
		         {"itemSequence":7,"adjudication":[]}]}},
		{"fullUrl":"urn:uuid:1","request":{"method":"POST"},"resource":{"resourceType":"Patient"}}]}`))
	r, fs := PASResponse(b, PASOptions{Submitted: []int{1, 2}})
	if r == nil {
		t.Fatal("not read")
	}
	got := rules(fs)
	for _, want := range []string{"PAS R26", "PAS spec-31", "PAS spec-32", "PAS R33", "PAS R33/§1.4", "PAS spec-34", "PAS R37", "PAS spec-46"} {
		if !strings.Contains(got, want) {
			t.Errorf("rule %q not found in %s", want, got)
		}
	}
	if _, fs := PASResponse(map[string]any{"resourceType": "OperationOutcome"}, PASOptions{}); len(fs) != 1 {
		t.Errorf("a non-Bundle: %v", fs)
	}
}

// TestNotificationFindsBrokenBackportRules: the backport IG's handshake
// example shape passes; each broken rule of a notification or its
// SubscriptionStatus is found.
func TestNotificationFindsBrokenBackportRules(t *testing.T) {
	good := `{"resourceType":"Bundle","type":"history","timestamp":"2020-05-29T11:44:13.188-05:00","entry":[{
		"fullUrl":"urn:uuid:63c28e8a-f402-43e4-beb2-75b1c0f6833f",
		"resource":{"resourceType":"Parameters","parameter":[
			{"name":"subscription","valueReference":{"reference":"https://example.org/fhir/Subscription/admission"}},
			{"name":"topic","valueCanonical":"http://example.org/topic"},
			{"name":"status","valueCode":"requested"},{"name":"type","valueCode":"handshake"},
			{"name":"events-since-subscription-start","valueString":"0"}]},
		"request":{"method":"GET","url":"https://example.org/fhir/Subscription/admission/$status"},"response":{"status":"200"}}]}`
	b, _ := Decode([]byte(good))
	if st, _, fs := Notification(b); len(fs) != 0 || st == nil {
		t.Errorf("the backport's handshake example: status %v, findings %v", st != nil, fs)
	}
	bad := `{"resourceType":"Bundle","type":"collection","entry":[{
		"resource":{"resourceType":"Parameters","parameter":[
			{"name":"status","valueCode":"on"},{"name":"type","valueCode":"handshake"},{"name":"type","valueCode":"heartbeat"},
			{"name":"events-since-subscription-start","valueString":"many"},
			{"name":"notification-event","part":[{"name":"timestamp","valueString":"x"}]}]}},
		{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Bundle"},"request":{"method":"POST","url":"Bundle"}}]}`
	b, _ = Decode([]byte(bad))
	_, focus, fs := Notification(b)
	var got []string
	for _, f := range fs {
		got = append(got, f.Where+": "+f.Msg)
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"want a history Bundle", "Bundle.timestamp", "Bundle.entry[0]: has no fullUrl", "Bundle.entry[0].request", "Bundle.entry[1].response",
		`status "on"`, "has 0 subscription parameters", "has 2 type parameters", "holding a number", "timestamp needs a valueInstant", "0 event-number parts",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("finding %q missing from:\n%s", want, all)
		}
	}
	if len(focus) != 1 {
		t.Errorf("%d focus Bundles, want 1", len(focus))
	}
}
