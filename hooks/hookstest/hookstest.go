// Package hookstest checks CDS Hooks responses against the rules of CDS
// Hooks 2.0 and Da Vinci CRD 2.2.1 (2.0.1 in its mode), for tests of the
// hooks and server packages. Each finding is a test error naming the rule.
package hookstest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// CoverageInfoURL is the CRD coverage-information extension.
const CoverageInfoURL = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"

// Response is a decoded CDS Hooks response.
type Response struct {
	Cards         []map[string]any
	SystemActions []map[string]any
	HasActions    bool
	// CoverageInfo lists every coverage-information extension of the
	// system actions, by the annotated resource's "Type/id".
	CoverageInfo map[string][]CoverageInfo
}

// CoverageInfo is one coverage-information extension, flattened.
type CoverageInfo struct {
	Coverage      string
	Covered       string
	PANeeded      string
	DocNeeded     []string
	DocPurpose    []string
	InfoNeeded    []string
	Reasons       []string // reason codes, or "text:<text>" without a code
	Questionnaire []string
	AssertionID   string
	SatisfiedPAID string
	ExpiryDate    string
	Date          string
	URLs          []string // sub-extension urls, in order
}

var primary = map[string]bool{"order-sign": true, "order-dispatch": true, "appointment-book": true}

// Check decodes a response and checks every rule; request is the hook call
// it answers (for the unchanged-resource rule).
func Check(t testing.TB, version, hook string, request, response []byte) *Response {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(response, &raw); err != nil {
		t.Fatalf("response is not a JSON object: %v", err)
	}
	if _, ok := raw["cards"]; !ok {
		t.Errorf("CH-13: cards is required")
	}
	var r Response
	var body struct {
		Cards         []map[string]any `json:"cards"`
		SystemActions []map[string]any `json:"systemActions"`
	}
	if err := json.Unmarshal(response, &body); err != nil {
		t.Fatalf("response: %v", err)
	}
	r.Cards, r.SystemActions = body.Cards, body.SystemActions
	_, r.HasActions = raw["systemActions"]
	if version == "2.0" && primary[hook] && !r.HasActions {
		t.Errorf("2.0.1 mode: systemActions must be present on %s", hook)
	}
	noEmpty(t, "$", decodeAny(t, response), true)
	for i, c := range r.Cards {
		checkCard(t, fmt.Sprintf("cards[%d]", i), c)
	}
	orig := originals(t, request)
	r.CoverageInfo = map[string][]CoverageInfo{}
	for i, a := range r.SystemActions {
		where := fmt.Sprintf("systemActions[%d]", i)
		checkAction(t, where, a)
		res, _ := a["resource"].(map[string]any)
		if res == nil {
			continue
		}
		ref := fmt.Sprintf("%v/%v", res["resourceType"], res["id"])
		if a["type"] == "update" {
			cis := coverageInfos(t, where, res, version, primary[hook])
			if len(cis) == 0 {
				t.Errorf("%s: an update system action must carry coverage information (crd-respci1)", where)
			}
			r.CoverageInfo[ref] = append(r.CoverageInfo[ref], cis...)
			if o, ok := orig[ref]; ok && o != nil {
				if d := cmp.Diff(withoutCoverageInfo(o), withoutCoverageInfo(res)); d != "" {
					t.Errorf("%s: resp-37: %s changed beyond its coverage information (-sent +returned):\n%s", where, ref, d)
				}
			}
		}
	}
	return &r
}

func decodeAny(t testing.TB, b []byte) any {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// noEmpty applies CH-02: no null, "", [] or {} (cards: [] and
// systemActions: [] at the top excepted).
func noEmpty(t testing.TB, path string, v any, top bool) {
	t.Helper()
	switch x := v.(type) {
	case nil:
		t.Errorf("CH-02: %s is null", path)
	case string:
		if x == "" {
			t.Errorf("CH-02: %s is an empty string", path)
		}
	case []any:
		if len(x) == 0 {
			t.Errorf("CH-02: %s is an empty array", path)
		}
		for i, e := range x {
			noEmpty(t, fmt.Sprintf("%s[%d]", path, i), e, false)
		}
	case map[string]any:
		if len(x) == 0 {
			t.Errorf("CH-02: %s is an empty object", path)
		}
		for k, e := range x {
			if top && (k == "cards" || k == "systemActions") {
				if a, ok := e.([]any); ok && len(a) == 0 {
					continue
				}
			}
			if k == "resource" && strings.HasPrefix(path, "$.systemActions[") {
				continue // the client's own resource, returned as sent
			}
			noEmpty(t, path+"."+k, e, false)
		}
	}
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func checkCard(t testing.TB, where string, c map[string]any) {
	t.Helper()
	if str(c, "uuid") == "" {
		t.Errorf("%s: CRD cards need a uuid", where)
	}
	s := str(c, "summary")
	if s == "" || utf8.RuneCountInString(s) >= 140 {
		t.Errorf("%s: CH-14: summary must be 1..139 characters, got %d", where, utf8.RuneCountInString(s))
	}
	if !slices.Contains([]string{"info", "warning", "critical"}, str(c, "indicator")) {
		t.Errorf("%s: CH-14: indicator %q", where, str(c, "indicator"))
	}
	src, _ := c["source"].(map[string]any)
	if src == nil || str(src, "label") == "" {
		t.Errorf("%s: CH-14: source.label is required", where)
	} else if topic, _ := src["topic"].(map[string]any); topic == nil || str(topic, "code") == "" || str(topic, "system") == "" {
		t.Errorf("%s: resp-5: source.topic with system and code is required", where)
	}
	sugg, _ := c["suggestions"].([]any)
	if len(sugg) > 0 && !slices.Contains([]string{"at-most-one", "any"}, str(c, "selectionBehavior")) {
		t.Errorf("%s: CH-15: selectionBehavior is required with suggestions", where)
	}
	for i, sv := range sugg {
		s, _ := sv.(map[string]any)
		w := fmt.Sprintf("%s.suggestions[%d]", where, i)
		if str(s, "label") == "" || str(s, "uuid") == "" {
			t.Errorf("%s: CH-17/resp-3: label and uuid are required", w)
		}
		acts, _ := s["actions"].([]any)
		if len(acts) == 0 {
			t.Errorf("%s: a suggestion needs actions", w)
		}
		for j, av := range acts {
			a, _ := av.(map[string]any)
			checkAction(t, fmt.Sprintf("%s.actions[%d]", w, j), a)
		}
	}
	links, _ := c["links"].([]any)
	for i, lv := range links {
		l, _ := lv.(map[string]any)
		w := fmt.Sprintf("%s.links[%d]", where, i)
		if str(l, "label") == "" || str(l, "url") == "" {
			t.Errorf("%s: CH-19: label and url are required", w)
		}
		if u, err := url.Parse(str(l, "url")); err != nil || !u.IsAbs() {
			t.Errorf("%s: link url must be absolute", w)
		}
		switch str(l, "type") {
		case "absolute":
			if _, ok := l["appContext"]; ok {
				t.Errorf("%s: CH-19: appContext is only for smart links", w)
			}
		case "smart":
		default:
			t.Errorf("%s: CH-19: type %q", w, str(l, "type"))
		}
	}
}

func checkAction(t testing.TB, where string, a map[string]any) {
	t.Helper()
	if str(a, "description") == "" {
		t.Errorf("%s: CH-18: description is required", where)
	}
	switch str(a, "type") {
	case "create", "update":
		res, _ := a["resource"].(map[string]any)
		if res == nil || str(res, "resourceType") == "" {
			t.Errorf("%s: CH-18: create/update need a resource", where)
		}
		if _, ok := a["resourceId"]; ok {
			t.Errorf("%s: resourceId is for deletes only", where)
		}
	case "delete":
		if str(a, "resourceId") == "" {
			t.Errorf("%s: CH-18: delete needs resourceId", where)
		}
	default:
		t.Errorf("%s: CH-18: type %q", where, str(a, "type"))
	}
}

// originals indexes the request's resources by Type/id: context orders and
// appointments and every prefetched resource.
func originals(t testing.TB, request []byte) map[string]map[string]any {
	out := map[string]map[string]any{}
	var req struct {
		Context  map[string]any `json:"context"`
		Prefetch map[string]any `json:"prefetch"`
	}
	if json.Unmarshal(request, &req) != nil {
		return out
	}
	var visit func(v any)
	visit = func(v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		if m["resourceType"] == "Bundle" {
			entries, _ := m["entry"].([]any)
			for _, e := range entries {
				if em, ok := e.(map[string]any); ok {
					visit(em["resource"])
				}
			}
			return
		}
		if rt, ok := m["resourceType"].(string); ok {
			ref := fmt.Sprintf("%s/%v", rt, m["id"])
			if prev, dup := out[ref]; dup && !cmp.Equal(prev, m) {
				out[ref] = nil // two resources share an id: no telling which came back
				return
			}
			out[ref] = m
		}
	}
	for _, k := range []string{"draftOrders", "appointments"} {
		visit(req.Context[k])
	}
	for _, v := range req.Prefetch {
		visit(v)
	}
	return out
}

func withoutCoverageInfo(res map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range res {
		out[k] = v
	}
	exts, _ := res["extension"].([]any)
	var kept []any
	for _, e := range exts {
		if m, ok := e.(map[string]any); ok && m["url"] == CoverageInfoURL {
			continue
		}
		kept = append(kept, e)
	}
	delete(out, "extension")
	if len(kept) > 0 {
		out["extension"] = kept
	}
	return out
}

var (
	subURLs = []string{"coverage", "covered", "pa-needed", "doc-needed", "doc-purpose", "info-needed", "billingCode",
		"reason", "detail", "dependency", "questionnaire", "date", "coverage-assertion-id", "satisfied-pa-id", "contact", "expiry-date"}
	codes = map[string][]string{
		"covered":     {"covered", "not-covered", "conditional", "indeterminate"},
		"pa-needed":   {"no-auth", "auth-needed", "performpa", "satisfied", "conditional", "indeterminate"},
		"doc-needed":  {"clinical", "admin", "patient", "conditional", "indeterminate"},
		"doc-purpose": {"withpa", "withclaim", "withorder", "retain-doc", "OTH"},
		"info-needed": {"performer", "location", "timeframe", "contract-window", "detail-code", "OTH"},
	}
	reasonSet = []string{"gold-card", "no-member-found", "no-active-coverage", "coverage-not-found", "auth-out-network", "technical"}
)

// coverageInfos checks and flattens the coverage-information extensions of
// a resource: allowed sub-extensions, cardinalities, value sets and the
// invariants crd-ci-q1..q9; secondary hooks never ask for documentation.
func coverageInfos(t testing.TB, where string, res map[string]any, version string, primaryHook bool) []CoverageInfo {
	t.Helper()
	var out []CoverageInfo
	exts, _ := res["extension"].([]any)
	for _, ev := range exts {
		e, _ := ev.(map[string]any)
		if e["url"] != CoverageInfoURL {
			continue
		}
		var ci CoverageInfo
		count := map[string]int{}
		subs, _ := e["extension"].([]any)
		hasReasonText := true
		for _, sv := range subs {
			s, _ := sv.(map[string]any)
			u := str(s, "url")
			ci.URLs = append(ci.URLs, u)
			count[u]++
			if !slices.Contains(subURLs, u) {
				t.Errorf("%s: unknown coverage-information sub-extension %q", where, u)
			}
			if allowed, ok := codes[u]; ok {
				v := str(s, "valueCode")
				if !slices.Contains(allowed, v) || version == "2.0" && v == "indeterminate" {
					t.Errorf("%s: %s code %q is not allowed (CRD %s)", where, u, v, version)
				}
			}
			switch u {
			case "coverage":
				ref, _ := s["valueReference"].(map[string]any)
				if ref == nil {
					t.Errorf("%s: coverage needs valueReference", where)
				}
				ci.Coverage = str(ref, "reference")
			case "covered":
				ci.Covered = str(s, "valueCode")
			case "pa-needed":
				ci.PANeeded = str(s, "valueCode")
			case "doc-needed":
				ci.DocNeeded = append(ci.DocNeeded, str(s, "valueCode"))
			case "doc-purpose":
				ci.DocPurpose = append(ci.DocPurpose, str(s, "valueCode"))
			case "info-needed":
				ci.InfoNeeded = append(ci.InfoNeeded, str(s, "valueCode"))
			case "reason":
				cc, _ := s["valueCodeableConcept"].(map[string]any)
				coded := false
				for _, cv := range asSlice(cc["coding"]) {
					c, _ := cv.(map[string]any)
					ci.Reasons = append(ci.Reasons, str(c, "code"))
					coded = coded || slices.Contains(reasonSet, str(c, "code"))
				}
				if !coded {
					ci.Reasons = append(ci.Reasons, "text:"+str(cc, "text"))
					if str(cc, "text") == "" {
						hasReasonText = false
					}
				}
			case "questionnaire":
				ci.Questionnaire = append(ci.Questionnaire, str(s, "valueCanonical"))
			case "date":
				ci.Date = str(s, "valueDate")
			case "coverage-assertion-id":
				ci.AssertionID = str(s, "valueString")
			case "satisfied-pa-id":
				ci.SatisfiedPAID = str(s, "valueString")
			case "expiry-date":
				ci.ExpiryDate = str(s, "valueDate")
				if version == "2.0" {
					t.Errorf("%s: expiry-date is not in CRD 2.0.1", where)
				}
			}
		}
		for _, u := range []string{"coverage", "covered", "date", "coverage-assertion-id"} {
			if count[u] != 1 {
				t.Errorf("%s: %s must occur once, got %d", where, u, count[u])
			}
		}
		for _, u := range []string{"pa-needed", "satisfied-pa-id", "expiry-date"} {
			if count[u] > 1 {
				t.Errorf("%s: %s may occur once, got %d", where, u, count[u])
			}
		}
		cond := ci.Covered == "conditional" || ci.PANeeded == "conditional" || slices.Contains(ci.DocNeeded, "conditional")
		indet := ci.Covered == "indeterminate" || ci.PANeeded == "indeterminate" || slices.Contains(ci.DocNeeded, "indeterminate")
		hasReason := count["reason"] > 0
		rules := []struct {
			bad  bool
			rule string
		}{
			{count["questionnaire"] > 0 && count["doc-needed"] == 0, "crd-ci-q1: questionnaire needs doc-needed"},
			{ci.Covered == "not-covered" && ci.PANeeded != "", "crd-ci-q2: not-covered allows no pa-needed"},
			{cond && len(ci.InfoNeeded) == 0, "crd-ci-q3: conditional needs info-needed"},
			{(ci.PANeeded == "satisfied" || ci.PANeeded == "no-auth") && slices.Contains(ci.DocPurpose, "withpa"), "crd-ci-q4: no withpa without PA"},
			{(ci.SatisfiedPAID != "") != (ci.PANeeded == "satisfied"), "crd-ci-q5: satisfied-pa-id iff pa-needed satisfied"},
			{slices.Contains(ci.InfoNeeded, "OTH") && !hasReason, "crd-ci-q6: info-needed OTH needs a reason"},
			{!hasReasonText, "crd-ci-q7: a reason outside the value set needs text"},
			{slices.ContainsFunc(ci.DocPurpose, func(s string) bool { return s != "conditional" }) && !hasReason, "crd-ci-q8: doc-purpose needs a reason"},
			{indet && !hasReason, "crd-ci-q9: indeterminate needs a reason"},
			{!primaryHook && len(ci.DocNeeded) > 0, "hook-19: secondary hooks ask for no documentation"},
		}
		for _, r := range rules {
			if r.bad {
				t.Errorf("%s: %s (%+v)", where, r.rule, ci)
			}
		}
		out = append(out, ci)
	}
	return out
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// InScope counts the orders (order-sign, order-select) or appointments
// (appointment-book) in a request's context: a primary hook must annotate
// each of them.
func InScope(t testing.TB, request []byte) []string {
	t.Helper()
	var req struct {
		Hook    string `json:"hook"`
		Context struct {
			DraftOrders  map[string]any `json:"draftOrders"`
			Appointments map[string]any `json:"appointments"`
		} `json:"context"`
	}
	if err := json.Unmarshal(request, &req); err != nil {
		t.Fatal(err)
	}
	types := "ServiceRequest DeviceRequest MedicationRequest NutritionOrder CommunicationRequest VisionPrescription"
	b := req.Context.DraftOrders
	if req.Hook == "appointment-book" {
		b, types = req.Context.Appointments, "Appointment"
	}
	var out []string
	for _, e := range asSlice(b["entry"]) {
		em, _ := e.(map[string]any)
		res, _ := em["resource"].(map[string]any)
		if rt := str(res, "resourceType"); rt != "" && strings.Contains(types, rt) {
			out = append(out, fmt.Sprintf("%s/%v", rt, res["id"]))
		}
	}
	return out
}
