package suite

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/priora/priora/profiles"
)

// X12 306 review action codes (PAS "Prior Authorization Response").
const (
	x12ReviewAction = "https://codesystem.x12.org/005010/306"
	pasTopic        = "http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic"
	pasSubscription = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-subscription"
	backportStatus  = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4"
)

// itemResult is one ClaimResponse item as an EHR reads it.
type itemResult struct {
	Sequence     int    // 0 when the item has no itemSequence
	ReviewAction string // X12 306 code
}

// pasResponse is a PAS Response Bundle (or Inquiry Response Bundle) that
// has been checked.
type pasResponse struct {
	Bundle        map[string]any
	ClaimResponse map[string]any
	Items         []itemResult
}

// reviewActions lists the items' X12 306 codes, in order.
func (r *pasResponse) reviewActions() []string {
	var out []string
	for _, it := range r.Items {
		out = append(out, fmt.Sprintf("%d:%s", it.Sequence, cmp.Or(it.ReviewAction, "none")))
	}
	return out
}

func (r *pasResponse) hasAction(code string) bool {
	return slices.ContainsFunc(r.Items, func(it itemResult) bool { return it.ReviewAction == code })
}

// sequences lists the item sequences answered.
func (r *pasResponse) sequences() []int {
	var out []int
	for _, it := range r.Items {
		if it.Sequence != 0 {
			out = append(out, it.Sequence)
		}
	}
	return out
}

// readResponse decodes a PAS response Bundle and reads its ClaimResponse
// and items without judging them (for tests that only need the content).
func readResponse(body []byte) (*pasResponse, error) {
	b, err := decodeObject(body)
	if err != nil {
		return nil, fmt.Errorf("the answer is not a JSON object: %v", err)
	}
	return readBundle(b)
}

func readBundle(b map[string]any) (*pasResponse, error) {
	if rt := str(b, "resourceType"); rt != "Bundle" {
		return nil, fmt.Errorf("the answer is a %s, want a Bundle", cmp.Or(rt, "JSON object without resourceType"))
	}
	r := &pasResponse{Bundle: b}
	entries := arr(b["entry"])
	if len(entries) == 0 {
		return nil, fmt.Errorf("the Bundle has no entries, want a ClaimResponse first")
	}
	cr := obj(obj(entries[0])["resource"])
	if str(cr, "resourceType") != "ClaimResponse" {
		return nil, fmt.Errorf("PAS spec-30: the first entry is a %s, want a ClaimResponse", cmp.Or(str(cr, "resourceType"), "entry without resource"))
	}
	r.ClaimResponse = cr
	for _, iv := range arr(cr["item"]) {
		it := obj(iv)
		seq, _ := number(it["itemSequence"])
		res := itemResult{Sequence: seq}
		for _, adj := range arr(it["adjudication"]) {
			for _, ra := range extensions(obj(adj), "extension-reviewAction") {
				for _, code := range extensions(ra, "extension-reviewActionCode") {
					if sys, c := firstCoding(code["valueCodeableConcept"]); c != "" && (sys == x12ReviewAction || res.ReviewAction == "") {
						res.ReviewAction = c
					}
				}
			}
		}
		r.Items = append(r.Items, res)
	}
	return r, nil
}

// checkResponse checks a PAS Response Bundle (inquiry: a PAS Inquiry
// Response Bundle) the way an EHR and the PAS kit do: profile validation,
// entry rules, references resolvable in the Bundle, ClaimResponse codes,
// and item sequences against the submitted ones (when known). Each
// finding fails t; the response is returned when it could be read.
func (s *session) checkResponse(t *T, label string, b map[string]any, submitted []int, inquiry bool) *pasResponse {
	var res profiles.Result
	profile := "profile-pas-response-bundle"
	if inquiry {
		res, profile = s.v.ValidatePASInquiryResponse(mustJSON(b)), "profile-pas-inquiry-response-bundle"
	} else {
		res = s.v.ValidatePASResponse(mustJSON(b))
	}
	if res.HasErrors() {
		t.Failf("PAS spec-23/R26: the %s does not conform to %s (%d errors):%s", label, profile, len(res.Errors()), issues(res, 8))
	}
	r, err := readBundle(b)
	if err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	if typ := str(b, "type"); typ != "collection" {
		t.Failf("PAS R26: %s Bundle.type is %q, want collection", label, typ)
	}
	if str(b, "timestamp") == "" {
		t.Failf("PAS R26: %s has no Bundle.timestamp (1..1)", label)
	}
	if !inquiry && b["identifier"] == nil {
		t.Failf("PAS R26: %s has no Bundle.identifier (1..1)", label)
	}
	full := map[string]int{}
	claimResponses := 0
	for i, ev := range arr(b["entry"]) {
		e := obj(ev)
		fu := str(e, "fullUrl")
		if fu == "" {
			t.Failf("PAS R26: %s entry[%d] has no fullUrl", label, i)
		} else if !strings.HasPrefix(fu, "urn:uuid:") && !strings.HasPrefix(fu, "http://") && !strings.HasPrefix(fu, "https://") {
			t.Failf("PAS spec-16: %s entry[%d].fullUrl %q is neither an absolute URL nor urn:uuid", label, i, fu)
		}
		full[fu]++
		for _, k := range []string{"request", "response", "search"} {
			if e[k] != nil {
				t.Failf("PAS R26: %s entry[%d] carries entry.%s (0..0 in a collection Bundle)", label, i, k)
			}
		}
		if str(obj(e["resource"]), "resourceType") == "ClaimResponse" {
			claimResponses++
		}
	}
	for u, n := range full {
		if n > 1 && u != "" {
			t.Failf("PAS spec-31: %s has %d entries with fullUrl %s; each resource appears at most once", label, n, u)
		}
	}
	if !inquiry && claimResponses != 1 {
		t.Failf("PAS R26: %s has %d ClaimResponses, want exactly 1", label, claimResponses)
	}
	cr := r.ClaimResponse
	for _, ref := range referencesIn(cr, "ClaimResponse") {
		if ref.path == "ClaimResponse.request" {
			continue // spec-32 note: the Claim need not be included
		}
		if n := resolveCount(b, ref.value); n != 1 {
			t.Failf("PAS spec-32: %s %s → %q resolves to %d Bundle entries, want exactly 1", label, ref.path, ref.value, n)
		}
	}
	if v := str(cr, "status"); v != "active" {
		t.Failf("PAS R33: %s ClaimResponse.status is %q, want active", label, v)
	}
	if v := str(cr, "use"); v != "preauthorization" {
		t.Failf("PAS R33: %s ClaimResponse.use is %q, want preauthorization", label, v)
	}
	switch o := str(cr, "outcome"); o {
	case "complete", "error", "partial":
	case "queued":
		t.Failf("PAS R33/§1.4: %s ClaimResponse.outcome is \"queued\", which PAS 2.2 removed: a pended request is outcome complete with review action A4", label)
	default:
		t.Failf("PAS R33: %s ClaimResponse.outcome is %q, want complete, error or partial", label, o)
	}
	seen := map[int]bool{}
	for i, iv := range arr(cr["item"]) {
		it := obj(iv)
		seq, ok := number(it["itemSequence"])
		if !ok {
			t.Failf("PAS spec-34: %s ClaimResponse.item[%d] has no itemSequence; each item must echo its Claim.item.sequence", label, i)
			continue
		}
		if seen[seq] {
			t.Failf("PAS spec-34: %s answers item sequence %d twice", label, seq)
		}
		seen[seq] = true
		if len(submitted) > 0 && !slices.Contains(submitted, seq) {
			t.Failf("PAS spec-34: %s ClaimResponse.item[%d].itemSequence %d is not a submitted item sequence (submitted: %s)", label, i, seq, joinInts(slices.Clone(submitted)))
		}
		adjs := arr(it["adjudication"])
		if len(adjs) == 0 {
			t.Failf("PAS R37: %s ClaimResponse.item[%d] (sequence %d) has no adjudication, so no decision", label, i, seq)
		}
		for j, av := range adjs {
			a := obj(av)
			if _, code := firstCoding(a["category"]); code != "submitted" {
				t.Failf("PAS R33: %s item[%d].adjudication[%d].category is %q, want submitted", label, i, j, code)
			}
			for _, ra := range extensions(a, "extension-reviewAction") {
				for _, rc := range extensions(ra, "extension-reviewActionCode") {
					if sys, _ := firstCoding(rc["valueCodeableConcept"]); sys != x12ReviewAction {
						t.Failf("PAS R37: %s item[%d] reviewActionCode system is %q, want %s", label, i, sys, x12ReviewAction)
					}
				}
			}
		}
	}
	if len(submitted) > 0 && str(cr, "outcome") != "error" {
		var missing []int
		for _, q := range submitted {
			if !seen[q] {
				missing = append(missing, q)
			}
		}
		if len(missing) > 0 {
			t.Failf("PAS spec-46: %s has no result for submitted item sequence(s) %s (answered: %s)", label, joinInts(missing), joinInts(r.sequences()))
		}
	}
	return r
}

type refAt struct{ path, value string }

// referencesIn lists every Reference.reference under v (not descending
// into contained resources).
func referencesIn(v any, at string) []refAt {
	var out []refAt
	switch x := v.(type) {
	case map[string]any:
		if r, ok := x["reference"].(string); ok && !strings.HasPrefix(r, "#") {
			out = append(out, refAt{at, r})
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			if k != "contained" {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			out = append(out, referencesIn(x[k], at+"."+k)...)
		}
	case []any:
		for i, c := range x {
			out = append(out, referencesIn(c, fmt.Sprintf("%s[%d]", at, i))...)
		}
	}
	return out
}

// resolveCount counts the Bundle entries a reference resolves to: by
// fullUrl, or for a relative Type/id by fullUrl suffix or by the
// resource's type and id.
func resolveCount(b map[string]any, ref string) int {
	n := 0
	relative := !strings.Contains(ref, ":")
	for _, ev := range arr(b["entry"]) {
		e := obj(ev)
		fu := str(e, "fullUrl")
		res := obj(e["resource"])
		switch {
		case fu == ref:
			n++
		case relative && (strings.HasSuffix(fu, "/"+ref) || str(res, "resourceType")+"/"+str(res, "id") == ref):
			n++
		}
	}
	return n
}

// resolveEntry returns the entry a reference (urn, absolute or Type/id)
// points at.
func resolveEntry(b map[string]any, ref string) map[string]any {
	relative := !strings.Contains(ref, ":")
	for _, ev := range arr(b["entry"]) {
		e := obj(ev)
		fu := str(e, "fullUrl")
		res := obj(e["resource"])
		if fu == ref || relative && (strings.HasSuffix(fu, "/"+ref) || str(res, "resourceType")+"/"+str(res, "id") == ref) {
			return e
		}
		if !relative && strings.HasPrefix(ref, "http") && str(res, "id") != "" && strings.HasSuffix(ref, "/"+str(res, "resourceType")+"/"+str(res, "id")) {
			return e
		}
	}
	return nil
}

// msElement is a must-support element and its path of JSON members.
type msElement struct {
	ID   string
	Path string
}

// present reports whether the path has a value in any of the resources.
func (m msElement) present(resources []map[string]any) bool {
	segs := splitPath(m.Path)
	for _, r := range resources {
		if hasPath(r, segs) {
			return true
		}
	}
	return false
}

// splitPath splits at dots outside parentheses.
func splitPath(p string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range p {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case '.':
			if depth == 0 {
				out = append(out, p[start:i])
				start = i + 1
			}
		}
	}
	return append(out, p[start:])
}

func hasPath(v any, segs []string) bool {
	if len(segs) == 0 {
		return v != nil
	}
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if hasPath(e, segs) {
				return true
			}
		}
		return false
	case map[string]any:
		seg := segs[0]
		if name, url, ok := strings.Cut(seg, "("); ok {
			url = strings.TrimSuffix(url, ")")
			for _, e := range arr(x[name]) {
				if str(obj(e), "url") == url && hasPath(e, segs[1:]) {
					return true
				}
			}
			return false
		}
		if base, ok := strings.CutSuffix(seg, "[x]"); ok {
			for k, val := range x {
				if strings.HasPrefix(k, base) && len(k) > len(base) && hasPath(val, segs[1:]) {
					return true
				}
			}
			return false
		}
		return hasPath(x[seg], segs[1:])
	}
	return false
}

// missingMS lists the must-support elements none of the resources has.
func missingMS(list []msElement, resources []map[string]any) []string {
	var out []string
	for _, m := range list {
		if !m.present(resources) {
			out = append(out, m.ID)
		}
	}
	return out
}
