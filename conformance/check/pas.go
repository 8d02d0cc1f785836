package check

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// X12ReviewAction is the code system of the PAS review action codes (X12
// 306).
const X12ReviewAction = "https://codesystem.x12.org/005010/306"

// PASItem is one ClaimResponse item as an EHR reads it.
type PASItem struct {
	Sequence     int      // 0 when the item has no itemSequence
	ReviewAction string   // X12 306 code
	Reasons      []string // review action reason codes
	Number       string   // the review action's number (the payer's authorization number)
}

// PASAnswer is a PAS Response Bundle (or Inquiry Response Bundle), read.
type PASAnswer struct {
	Bundle        map[string]any
	ClaimResponse map[string]any
	Items         []PASItem
}

// ReadPAS reads a PAS response Bundle's ClaimResponse and items without
// judging them; the error says why there is nothing to read.
func ReadPAS(b map[string]any) (*PASAnswer, error) {
	if rt := str(b, "resourceType"); rt != "Bundle" {
		return nil, fmt.Errorf("the answer is a %s, want a Bundle", cmp.Or(rt, "JSON object without resourceType"))
	}
	entries := arr(b["entry"])
	if len(entries) == 0 {
		return nil, fmt.Errorf("the Bundle has no entries, want a ClaimResponse first")
	}
	cr := obj(obj(entries[0])["resource"])
	if str(cr, "resourceType") != "ClaimResponse" {
		return nil, fmt.Errorf("PAS spec-30: the first entry is a %s, want a ClaimResponse", cmp.Or(str(cr, "resourceType"), "entry without resource"))
	}
	r := &PASAnswer{Bundle: b, ClaimResponse: cr}
	for _, iv := range arr(cr["item"]) {
		it := obj(iv)
		seq, _ := Number(it["itemSequence"])
		res := PASItem{Sequence: seq}
		for _, adj := range arr(it["adjudication"]) {
			for _, ra := range Extensions(obj(adj), "extension-reviewAction") {
				for _, sub := range arr(ra["extension"]) {
					s := obj(sub)
					switch u := str(s, "url"); {
					case strings.HasSuffix(u, "extension-reviewActionCode"):
						if sys, c := firstCoding(s["valueCodeableConcept"]); c != "" && (sys == X12ReviewAction || res.ReviewAction == "") {
							res.ReviewAction = c
						}
					case u == "reasonCode":
						_, c := firstCoding(s["valueCodeableConcept"])
						res.Reasons = append(res.Reasons, c)
					case u == "number":
						res.Number = str(s, "valueString")
					}
				}
			}
		}
		r.Items = append(r.Items, res)
	}
	return r, nil
}

// Sequences lists the item sequences answered.
func (r *PASAnswer) Sequences() []int {
	var out []int
	for _, it := range r.Items {
		if it.Sequence != 0 {
			out = append(out, it.Sequence)
		}
	}
	return out
}

// PASOptions say what a PAS response check needs besides the answer.
type PASOptions struct {
	Inquiry   bool  // an Inquiry Response Bundle (no identifier required; ClaimResponses may be several)
	Submitted []int // the submitted item sequences, when known
}

// PASResponse checks a PAS Response Bundle the way an EHR and the PAS
// test kit do, beyond profile validation (which the caller does): entry
// rules, references resolvable in the Bundle, ClaimResponse codes, item
// sequences against the submitted ones, review actions. The answer is nil
// when it cannot be read (the findings say why).
func PASResponse(b map[string]any, o PASOptions) (*PASAnswer, []Finding) {
	var fs findings
	r, err := ReadPAS(b)
	if err != nil {
		fs.add("PAS R26", "", "%v", err)
		return nil, fs
	}
	if typ := str(b, "type"); typ != "collection" {
		fs.add("PAS R26", "Bundle.type", "is %q, want collection", typ)
	}
	if str(b, "timestamp") == "" {
		fs.add("PAS R26", "Bundle.timestamp", "is missing (1..1)")
	}
	if !o.Inquiry && b["identifier"] == nil {
		fs.add("PAS R26", "Bundle.identifier", "is missing (1..1)")
	}
	full := map[string]int{}
	claimResponses := 0
	for i, ev := range arr(b["entry"]) {
		e := obj(ev)
		w := fmt.Sprintf("entry[%d]", i)
		fu := str(e, "fullUrl")
		if fu == "" {
			fs.add("PAS R26", w, "has no fullUrl")
		} else if !strings.HasPrefix(fu, "urn:uuid:") && !strings.HasPrefix(fu, "http://") && !strings.HasPrefix(fu, "https://") {
			fs.add("PAS spec-16", w, "fullUrl %q is neither an absolute URL nor urn:uuid", fu)
		}
		if e["resource"] == nil {
			fs.add("PAS R26", w, "has no resource")
		}
		full[fu]++
		for _, k := range []string{"request", "response", "search"} {
			if e[k] != nil {
				fs.add("PAS R26", w, "carries entry.%s (0..0 in a collection Bundle)", k)
			}
		}
		if str(obj(e["resource"]), "resourceType") == "ClaimResponse" {
			claimResponses++
		}
	}
	urls := make([]string, 0, len(full))
	for u := range full {
		urls = append(urls, u)
	}
	slices.Sort(urls)
	for _, u := range urls {
		if n := full[u]; n > 1 && u != "" {
			fs.add("PAS spec-31", "", "%d entries have fullUrl %s; each resource appears at most once", n, u)
		}
	}
	if !o.Inquiry && claimResponses != 1 {
		fs.add("PAS R26", "", "%d ClaimResponses, want exactly 1", claimResponses)
	}
	cr := r.ClaimResponse
	for _, ref := range ReferencesIn(cr, "ClaimResponse") {
		if ref.Path == "ClaimResponse.request" {
			continue // spec-32 note: the Claim need not be included
		}
		if n := ResolveCount(b, ref.Value); n != 1 {
			fs.add("PAS spec-32", ref.Path, "%q resolves to %d Bundle entries, want exactly 1", ref.Value, n)
		}
	}
	if v := str(cr, "status"); v != "active" {
		fs.add("PAS R33", "ClaimResponse.status", "is %q, want active", v)
	}
	if v := str(cr, "use"); v != "preauthorization" {
		fs.add("PAS R33", "ClaimResponse.use", "is %q, want preauthorization", v)
	}
	for _, k := range []string{"patient", "insurer", "request", "created", "type"} {
		if cr[k] == nil {
			fs.add("PAS R33", "ClaimResponse."+k, "is missing (1..1)")
		}
	}
	switch oc := str(cr, "outcome"); oc {
	case "complete", "error", "partial":
	case "queued":
		fs.add("PAS R33/§1.4", "ClaimResponse.outcome", "is \"queued\", which PAS 2.2 removed: a pended request is outcome complete with review action A4")
	default:
		fs.add("PAS R33", "ClaimResponse.outcome", "is %q, want complete, error or partial", oc)
	}
	seen := map[int]bool{}
	for i, iv := range arr(cr["item"]) {
		it := obj(iv)
		w := fmt.Sprintf("ClaimResponse.item[%d]", i)
		seq, ok := Number(it["itemSequence"])
		if !ok {
			fs.add("PAS spec-34", w, "has no itemSequence; each item must echo its Claim.item.sequence")
			continue
		}
		if seen[seq] {
			fs.add("PAS spec-34", w, "answers item sequence %d twice", seq)
		}
		seen[seq] = true
		if len(o.Submitted) > 0 && !slices.Contains(o.Submitted, seq) {
			fs.add("PAS spec-34", w, "itemSequence %d is not a submitted item sequence (submitted: %s)", seq, JoinInts(o.Submitted))
		}
		adjs := arr(it["adjudication"])
		if len(adjs) == 0 {
			fs.add("PAS R37", w, "(sequence %d) has no adjudication, so no decision", seq)
		}
		reviewed := false
		for j, av := range adjs {
			a := obj(av)
			if _, code := firstCoding(a["category"]); code != "submitted" {
				fs.add("PAS R33", fmt.Sprintf("%s.adjudication[%d].category", w, j), "is %q, want submitted", code)
			}
			for _, ra := range Extensions(a, "extension-reviewAction") {
				for _, rc := range Extensions(ra, "extension-reviewActionCode") {
					reviewed = true
					if sys, _ := firstCoding(rc["valueCodeableConcept"]); sys != X12ReviewAction {
						fs.add("PAS R37", w, "reviewActionCode system is %q, want %s", sys, X12ReviewAction)
					}
				}
			}
		}
		if len(adjs) > 0 && !reviewed {
			fs.add("PAS R37", w, "(sequence %d) has no reviewAction code", seq)
		}
	}
	if len(o.Submitted) > 0 && str(cr, "outcome") != "error" {
		var missing []int
		for _, q := range o.Submitted {
			if !seen[q] {
				missing = append(missing, q)
			}
		}
		if len(missing) > 0 {
			fs.add("PAS spec-46", "", "no result for submitted item sequence(s) %s (answered: %s)", JoinInts(missing), JoinInts(r.Sequences()))
		}
	}
	return r, fs
}

// RefAt is a Reference.reference and where it is.
type RefAt struct{ Path, Value string }

// ReferencesIn lists every Reference.reference under v (not descending
// into contained resources; local "#id" references left out).
func ReferencesIn(v any, at string) []RefAt {
	var out []RefAt
	switch x := v.(type) {
	case map[string]any:
		if r, ok := x["reference"].(string); ok && !strings.HasPrefix(r, "#") {
			out = append(out, RefAt{at, r})
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			if k != "contained" {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			out = append(out, ReferencesIn(x[k], at+"."+k)...)
		}
	case []any:
		for i, c := range x {
			out = append(out, ReferencesIn(c, fmt.Sprintf("%s[%d]", at, i))...)
		}
	}
	return out
}

// ResolveCount counts the Bundle entries a reference resolves to: by
// fullUrl, or for a relative Type/id by fullUrl suffix or by the
// resource's type and id.
func ResolveCount(b map[string]any, ref string) int {
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

// Extensions returns the extensions of m whose url is suffix or ends with
// "/"+suffix.
func Extensions(m map[string]any, suffix string) []map[string]any {
	var out []map[string]any
	for _, e := range arr(m["extension"]) {
		em := obj(e)
		if u := str(em, "url"); u != "" && (u == suffix || strings.HasSuffix(u, "/"+suffix)) {
			out = append(out, em)
		}
	}
	return out
}

// firstCoding returns the system and code of a CodeableConcept's first
// coding.
func firstCoding(cc any) (system, code string) {
	cs := arr(obj(cc)["coding"])
	if len(cs) == 0 {
		return "", ""
	}
	c := obj(cs[0])
	return str(c, "system"), str(c, "code")
}

// Number reads a JSON number (or a numeric string) as an int.
func Number(v any) (int, bool) {
	switch x := v.(type) {
	case float64:
		return int(x), true
	case string:
		n, err := strconv.Atoi(x)
		return n, err == nil
	}
	return 0, false
}

// JoinInts renders numbers sorted, comma-separated.
func JoinInts(s []int) string {
	s = slices.Clone(s)
	slices.Sort(s)
	parts := make([]string, len(s))
	for i, n := range s {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ", ")
}
