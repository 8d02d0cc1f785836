package check

import (
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// CoverageInfoURL is the CRD coverage-information extension.
const CoverageInfoURL = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"

// PrimaryHook reports whether CRD calls a hook primary (order-sign,
// order-dispatch, appointment-book): these must carry coverage information.
func PrimaryHook(h string) bool {
	return h == "order-sign" || h == "order-dispatch" || h == "appointment-book"
}

var cardIndicators = []string{"info", "warning", "critical"}

// HookResponse checks a CDS Hooks answer against CDS Hooks 2.0 (CH-02,
// CH-13 … CH-19) and the CRD response rules that concern its shape (card
// uuid and topic, resp-3, resp-5). A primary hook's answer needs a
// systemActions array in CRD 2.0.1 mode, and whenever coverage information
// is expected (Inferno 3.x.05; not when the call turned it off).
func HookResponse(body map[string]any, hook, version string, coverageExpected bool) []Finding {
	var fs findings
	cards, ok := body["cards"].([]any)
	if !ok {
		fs.add("CH-13", "", "the answer has no cards array")
	}
	if _, ok := body["systemActions"].([]any); !ok && PrimaryHook(hook) && (version == "2.0" || coverageExpected) {
		fs.add("CRD (Inferno 3.x.05)", "", "a %s answer needs a systemActions array", hook)
	}
	noEmpty(&fs, "$", body, true)
	for i, cv := range cards {
		w := fmt.Sprintf("cards[%d]", i)
		card := obj(cv)
		if card == nil {
			fs.add("CH-14", w, "is not an object")
			continue
		}
		if str(card, "uuid") == "" {
			fs.add("CRD resp (CRDHooksResponseBase uuid 1..1)", w, "has no uuid")
		}
		if s := str(card, "summary"); s == "" || utf8.RuneCountInString(s) >= 140 {
			fs.add("CH-14", w, "summary must be 1–139 characters, has %d", utf8.RuneCountInString(s))
		}
		if !slices.Contains(cardIndicators, str(card, "indicator")) {
			fs.add("CH-14", w, "indicator %q is not info, warning or critical", str(card, "indicator"))
		}
		src := obj(card["source"])
		if str(src, "label") == "" {
			fs.add("CH-14/resp-4", w, "has no source.label")
		}
		if topic := obj(src["topic"]); str(topic, "code") == "" || str(topic, "system") == "" {
			fs.add("CRD resp-5", w, "source.topic needs a system and code (CRD response type)")
		}
		sugg := arr(card["suggestions"])
		if len(sugg) > 0 && !slices.Contains([]string{"at-most-one", "any"}, str(card, "selectionBehavior")) {
			fs.add("CH-15", w, "has suggestions but selectionBehavior %q (want at-most-one or any)", str(card, "selectionBehavior"))
		}
		for j, sv := range sugg {
			sg := obj(sv)
			sw := fmt.Sprintf("%s.suggestions[%d]", w, j)
			if str(sg, "label") == "" {
				fs.add("CH-17", sw, "has no label")
			}
			if str(sg, "uuid") == "" {
				fs.add("CRD resp-3", sw, "has no uuid")
			}
			acts := arr(sg["actions"])
			if len(acts) == 0 {
				fs.add("CH-17 (Inferno 3.x.06)", sw, "has no actions")
			}
			for k, av := range acts {
				action(&fs, fmt.Sprintf("%s.actions[%d]", sw, k), obj(av))
			}
		}
		for j, ov := range arr(card["overrideReasons"]) {
			if o := obj(ov); str(o, "code") == "" || str(o, "system") == "" || str(o, "display") == "" {
				fs.add("CH-16", fmt.Sprintf("%s.overrideReasons[%d]", w, j), "needs code, system and display")
			}
		}
		for j, lv := range arr(card["links"]) {
			l := obj(lv)
			lw := fmt.Sprintf("%s.links[%d]", w, j)
			if str(l, "label") == "" || str(l, "url") == "" {
				fs.add("CH-19", lw, "needs label and url")
			}
			if u, err := url.Parse(str(l, "url")); err != nil || !u.IsAbs() {
				fs.add("CH-19", lw, "url %q is not absolute", str(l, "url"))
			}
			switch str(l, "type") {
			case "absolute":
				if _, ok := l["appContext"]; ok {
					fs.add("CH-19", lw, "is absolute but has appContext (only smart links may)")
				}
			case "smart":
			default:
				fs.add("CH-19", lw, "type %q is not absolute or smart", str(l, "type"))
			}
		}
	}
	for i, av := range arr(body["systemActions"]) {
		action(&fs, fmt.Sprintf("systemActions[%d]", i), obj(av))
	}
	return fs
}

func action(fs *findings, where string, a map[string]any) {
	if str(a, "description") == "" {
		fs.add("CH-18", where, "has no description")
	}
	switch typ := str(a, "type"); typ {
	case "create", "update":
		if str(obj(a["resource"]), "resourceType") == "" {
			fs.add("CH-18", where, "(%s) has no FHIR resource", typ)
		}
		if _, ok := a["resourceId"]; ok {
			fs.add("CH-18", where, "(%s) has a resourceId, which is for deletes", typ)
		}
	case "delete":
		if str(a, "resourceId") == "" {
			fs.add("CH-18", where, "(delete) has no resourceId")
		}
	default:
		fs.add("CH-18", where, "type %q is not create, update or delete", typ)
	}
}

// noEmpty is CH-02: no null, "", [] or {} (the top-level cards and
// systemActions may be empty; a system action's resource is the client's
// own, returned as sent).
func noEmpty(fs *findings, path string, v any, top bool) {
	switch x := v.(type) {
	case nil:
		fs.add("CH-02", path, "is null")
	case string:
		if x == "" {
			fs.add("CH-02", path, "is an empty string")
		}
	case []any:
		if len(x) == 0 && !top {
			fs.add("CH-02", path, "is an empty array")
		}
		for i, e := range x {
			noEmpty(fs, fmt.Sprintf("%s[%d]", path, i), e, false)
		}
	case map[string]any:
		if len(x) == 0 {
			fs.add("CH-02", path, "is an empty object")
		}
		for k, e := range x {
			if k == "resource" && strings.HasPrefix(path, "$.systemActions[") {
				continue
			}
			noEmpty(fs, path+"."+k, e, path == "$" && (k == "cards" || k == "systemActions"))
		}
	}
}

// CoverageInfo is one coverage-information extension, flattened.
type CoverageInfo struct {
	Ref        string // Type/id of the annotated resource
	Action     int    // systemActions index
	ActionType string // the system action's type
	Resource   map[string]any

	Coverage, Covered, PANeeded       string
	DocNeeded, DocPurpose, InfoNeeded []string
	// Reasons are the reason codes, and "text:<text>" for a reason with no
	// code of the CRD reason value set.
	Reasons                    []string
	ReasonTextMissing          bool
	Questionnaire              []string
	AssertionID, SatisfiedPAID string
	Date, ExpiryDate           string
	URLs                       []string // sub-extension urls, in order
	Count                      map[string]int
	Unknown                    []string // sub-extension urls the profile does not define
	BadCodes                   []string // "url=code" outside the required value sets
}

// CoverageSubURLs are the sub-extensions of ext-coverage-information.
var CoverageSubURLs = []string{"coverage", "covered", "pa-needed", "doc-needed", "doc-purpose", "info-needed", "billingCode",
	"reason", "detail", "dependency", "questionnaire", "date", "coverage-assertion-id", "satisfied-pa-id", "contact", "expiry-date"}

var coverageCodes = map[string][]string{
	"covered":     {"covered", "not-covered", "conditional", "indeterminate"},
	"pa-needed":   {"no-auth", "auth-needed", "performpa", "satisfied", "conditional", "indeterminate"},
	"doc-needed":  {"clinical", "admin", "patient", "conditional", "indeterminate"},
	"doc-purpose": {"withpa", "withclaim", "withorder", "retain-doc", "OTH"},
	"info-needed": {"performer", "location", "timeframe", "contract-window", "detail-code", "OTH"},
}

var coverageReasons = []string{"gold-card", "no-member-found", "no-active-coverage", "coverage-not-found", "auth-out-network", "technical"}

// CoverageInfos flattens the coverage-information extensions of every
// system action resource of an answer.
func CoverageInfos(body map[string]any) []CoverageInfo {
	var out []CoverageInfo
	for i, av := range arr(body["systemActions"]) {
		a := obj(av)
		res := obj(a["resource"])
		for _, ev := range arr(res["extension"]) {
			e := obj(ev)
			if str(e, "url") != CoverageInfoURL {
				continue
			}
			ci := CoverageInfo{Ref: str(res, "resourceType") + "/" + str(res, "id"), Action: i, ActionType: str(a, "type"),
				Resource: res, Count: map[string]int{}}
			for _, sv := range arr(e["extension"]) {
				sub := obj(sv)
				u := str(sub, "url")
				ci.URLs = append(ci.URLs, u)
				ci.Count[u]++
				if !slices.Contains(CoverageSubURLs, u) {
					ci.Unknown = append(ci.Unknown, u)
				}
				if allowed, ok := coverageCodes[u]; ok {
					if v := str(sub, "valueCode"); !slices.Contains(allowed, v) {
						ci.BadCodes = append(ci.BadCodes, u+"="+v)
					}
				}
				switch u {
				case "coverage":
					ci.Coverage = str(obj(sub["valueReference"]), "reference")
				case "covered":
					ci.Covered = str(sub, "valueCode")
				case "pa-needed":
					ci.PANeeded = str(sub, "valueCode")
				case "doc-needed":
					ci.DocNeeded = append(ci.DocNeeded, str(sub, "valueCode"))
				case "doc-purpose":
					ci.DocPurpose = append(ci.DocPurpose, str(sub, "valueCode"))
				case "info-needed":
					ci.InfoNeeded = append(ci.InfoNeeded, str(sub, "valueCode"))
				case "reason":
					cc := obj(sub["valueCodeableConcept"])
					coded := false
					for _, cv := range arr(cc["coding"]) {
						code := str(obj(cv), "code")
						ci.Reasons = append(ci.Reasons, code)
						coded = coded || slices.Contains(coverageReasons, code)
					}
					if !coded {
						ci.Reasons = append(ci.Reasons, "text:"+str(cc, "text"))
						if str(cc, "text") == "" {
							ci.ReasonTextMissing = true
						}
					}
				case "questionnaire":
					ci.Questionnaire = append(ci.Questionnaire, str(sub, "valueCanonical"))
				case "date":
					ci.Date = str(sub, "valueDate")
				case "coverage-assertion-id":
					ci.AssertionID = str(sub, "valueString")
				case "satisfied-pa-id":
					ci.SatisfiedPAID = str(sub, "valueString")
				case "expiry-date":
					ci.ExpiryDate = str(sub, "valueDate")
				}
			}
			out = append(out, ci)
		}
	}
	return out
}

// CoverageOptions say what a coverage-information check needs besides the
// answer.
type CoverageOptions struct {
	Version string // CRD version of the call: "2.2" or "2.0" (2.0.1 mode)
	Hook    string
	// Originals are the client's copies of the resources, by Type/id (see
	// Originals), for resp-37; a resource without a copy is not compared.
	Originals map[string]map[string]any
}

// Coverage checks the coverage information of an answer (CRD
// ext-coverage-information and its invariants crd-ci-q1 … q9,
// crd-respci1, hook-19, resp-32 and resp-37) and returns it flattened.
func Coverage(body map[string]any, o CoverageOptions) ([]CoverageInfo, []Finding) {
	var fs findings
	cis := CoverageInfos(body)
	ids := map[string]map[string]bool{} // coverage → assertion ids
	satisfied := map[string]int{}
	compared := map[int]bool{}
	for _, ci := range cis {
		w := fmt.Sprintf("systemActions[%d] (%s)", ci.Action, ci.Ref)
		if ci.ActionType != "update" {
			fs.add("CRD crd-respci1", w, "carries coverage information in a %q action, want update", ci.ActionType)
		}
		if orig, ok := o.Originals[ci.Ref]; ok && orig != nil && !compared[ci.Action] {
			compared[ci.Action] = true
			if d := changedKeys(WithoutCoverageInfo(orig), WithoutCoverageInfo(ci.Resource)); len(d) > 0 {
				fs.add("CRD resp-37", w, "the update changes %s of the resource beyond its coverage information", strings.Join(d, ", "))
			}
		}
		for _, u := range ci.Unknown {
			fs.add("CRD ext-coverage-information", w, "unknown sub-extension %q", u)
		}
		for _, bc := range ci.BadCodes {
			fs.add("CRD ext-coverage-information", w, "%s is not in its required value set", bc)
		}
		if o.Version == "2.0" && (ci.ExpiryDate != "" || slices.Contains(ci.DocNeeded, "patient") || slices.Contains(ci.DocNeeded, "indeterminate") ||
			ci.Covered == "indeterminate" || ci.PANeeded == "indeterminate") {
			fs.add("CRD 2.0.1", w, "uses 2.2-only content (expiry-date, doc-needed patient or an indeterminate code) in a 2.0 answer")
		}
		for _, u := range []string{"coverage", "covered", "date", "coverage-assertion-id"} {
			if ci.Count[u] != 1 {
				fs.add("CRD ext-coverage-information", w, "%s occurs %d times, want exactly 1", u, ci.Count[u])
			}
		}
		for _, u := range []string{"pa-needed", "satisfied-pa-id", "expiry-date"} {
			if ci.Count[u] > 1 {
				fs.add("CRD ext-coverage-information", w, "%s occurs %d times, want at most 1", u, ci.Count[u])
			}
		}
		cond := ci.Covered == "conditional" || ci.PANeeded == "conditional" || slices.Contains(ci.DocNeeded, "conditional")
		indet := ci.Covered == "indeterminate" || ci.PANeeded == "indeterminate" || slices.Contains(ci.DocNeeded, "indeterminate")
		hasReason := ci.Count["reason"] > 0
		for _, r := range []struct {
			bad        bool
			rule, text string
		}{
			{len(ci.Questionnaire) > 0 && len(ci.DocNeeded) == 0, "crd-ci-q1", "questionnaire requires doc-needed"},
			{ci.Covered == "not-covered" && ci.PANeeded != "", "crd-ci-q2", "not-covered allows no pa-needed"},
			{cond && len(ci.InfoNeeded) == 0, "crd-ci-q3", "a conditional answer requires info-needed"},
			{(ci.PANeeded == "satisfied" || ci.PANeeded == "no-auth") && slices.Contains(ci.DocPurpose, "withpa"), "crd-ci-q4", "doc-purpose withpa contradicts pa-needed " + ci.PANeeded},
			{(ci.SatisfiedPAID != "") != (ci.PANeeded == "satisfied"), "crd-ci-q5", "satisfied-pa-id is present exactly when pa-needed is satisfied"},
			{slices.Contains(ci.InfoNeeded, "OTH") && !hasReason, "crd-ci-q6", "info-needed OTH requires a reason"},
			{ci.ReasonTextMissing, "crd-ci-q7", "a reason outside the value set requires text"},
			{slices.ContainsFunc(ci.DocPurpose, func(s string) bool { return s != "conditional" }) && !hasReason, "crd-ci-q8", "doc-purpose requires a reason"},
			{indet && !hasReason, "crd-ci-q9", "indeterminate requires a reason"},
			{!PrimaryHook(o.Hook) && slices.ContainsFunc(ci.DocNeeded, func(s string) bool { return s == "clinical" || s == "admin" }), "CRD hook-19", "a secondary hook asks for clinical or administrative documentation"},
		} {
			if r.bad {
				fs.add(r.rule, w, "%s (covered=%s pa-needed=%s doc-needed=%v info-needed=%v reasons=%v)", r.text, ci.Covered, ci.PANeeded, ci.DocNeeded, ci.InfoNeeded, ci.Reasons)
			}
		}
		if ids[ci.Coverage] == nil {
			ids[ci.Coverage] = map[string]bool{}
		}
		ids[ci.Coverage][ci.AssertionID] = true
		if ci.SatisfiedPAID != "" {
			satisfied[ci.Coverage]++
		}
	}
	for i, av := range arr(body["systemActions"]) {
		a := obj(av)
		if str(a, "type") == "update" && !slices.ContainsFunc(cis, func(ci CoverageInfo) bool { return ci.Action == i }) {
			fs.add("CRD crd-respci1", fmt.Sprintf("systemActions[%d]", i), "an update system action must carry coverage information")
		}
	}
	owner := map[string]string{}
	covs := make([]string, 0, len(ids))
	for cov := range ids {
		covs = append(covs, cov)
	}
	sort.Strings(covs)
	for _, cov := range covs {
		for id := range ids[cov] {
			if prev, ok := owner[id]; ok && prev != cov {
				fs.add("CRD resp-32", "", "coverage-assertion-id %q is used for two coverages (%s, %s)", id, prev, cov)
			}
			owner[id] = cov
		}
	}
	for cov, n := range satisfied {
		if n > 1 && len(ids[cov]) > 1 {
			fs.warn("CRD resp-32", "", "%d satisfied-pa-ids for coverage %s", n, cov)
		}
	}
	return cis, fs
}

// Originals indexes the resources of a hook request by Type/id: the
// context's draft orders and appointments and every prefetched resource
// (Bundle entries included). Two different resources with one Type/id map
// to nil: there is no telling which came back.
func Originals(request map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	var visit func(v any)
	visit = func(v any) {
		m := obj(v)
		if m == nil {
			return
		}
		if str(m, "resourceType") == "Bundle" {
			for _, e := range arr(m["entry"]) {
				visit(obj(e)["resource"])
			}
			return
		}
		if rt := str(m, "resourceType"); rt != "" {
			ref := rt + "/" + str(m, "id")
			if prev, dup := out[ref]; dup && !reflect.DeepEqual(prev, m) {
				out[ref] = nil
				return
			}
			out[ref] = m
		}
	}
	for _, k := range []string{"draftOrders", "appointments"} {
		visit(obj(request["context"])[k])
	}
	for _, v := range obj(request["prefetch"]) {
		visit(v)
	}
	return out
}

// InScope lists the orders (order-sign, order-select, order-dispatch) or
// appointments (appointment-book) of a request: a primary hook annotates
// each of them.
func InScope(request map[string]any) []string {
	types := "ServiceRequest DeviceRequest MedicationRequest NutritionOrder CommunicationRequest VisionPrescription"
	ctx := obj(request["context"])
	b := obj(ctx["draftOrders"])
	if str(request, "hook") == "appointment-book" {
		b, types = obj(ctx["appointments"]), "Appointment"
	}
	var out []string
	for _, e := range arr(b["entry"]) {
		res := obj(obj(e)["resource"])
		if rt := str(res, "resourceType"); rt != "" && strings.Contains(types, rt) {
			out = append(out, rt+"/"+str(res, "id"))
		}
	}
	return out
}

// WithoutCoverageInfo is a copy of a resource without its
// coverage-information extensions (and without an emptied extension list).
func WithoutCoverageInfo(res map[string]any) map[string]any {
	out := make(map[string]any, len(res))
	for k, v := range res {
		out[k] = v
	}
	var kept []any
	for _, e := range arr(res["extension"]) {
		if str(obj(e), "url") != CoverageInfoURL {
			kept = append(kept, e)
		}
	}
	delete(out, "extension")
	if len(kept) > 0 {
		out["extension"] = kept
	}
	return out
}

// changedKeys lists the top-level elements that differ.
func changedKeys(a, b map[string]any) []string {
	var out []string
	for k, av := range a {
		if !reflect.DeepEqual(av, b[k]) {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
