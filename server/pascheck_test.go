package server_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// The helpers below check what an EHR integrator and the PAS conformance
// kits check on a PAS Response Bundle (PAS 2.2.1 §Prior Authorization
// Response; Inferno 2.x.1.03 / 2.4.5.x).

type entry struct {
	FullURL  string         `json:"fullUrl"`
	Resource map[string]any `json:"resource"`
	Request  any            `json:"request"`
	Response any            `json:"response"`
	Search   any            `json:"search"`
}

type bundle struct {
	ResourceType string         `json:"resourceType"`
	Type         string         `json:"type"`
	Identifier   map[string]any `json:"identifier"`
	Timestamp    string         `json:"timestamp"`
	Entry        []entry        `json:"entry"`
}

func decodeBundle(t *testing.T, b []byte) bundle {
	t.Helper()
	var out bundle
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("not a Bundle: %v\n%s", err, b)
	}
	return out
}

// itemResult is one ClaimResponse item as the EHR reads it.
type itemResult struct {
	Sequence     int
	ReviewAction string
	Reasons      []string
	Number       string
}

// checkPASResponse asserts the PAS Response Bundle rules and returns the
// ClaimResponse and its item results by sequence.
func checkPASResponse(t *testing.T, body []byte) (map[string]any, map[int]itemResult) {
	t.Helper()
	b := decodeBundle(t, body)
	if b.ResourceType != "Bundle" || b.Type != "collection" {
		t.Fatalf("got %s type %q, want a collection Bundle", b.ResourceType, b.Type)
	}
	if b.Identifier == nil || b.Timestamp == "" {
		t.Errorf("response Bundle lacks identifier or timestamp")
	}
	if len(b.Entry) == 0 || b.Entry[0].Resource["resourceType"] != "ClaimResponse" {
		t.Fatalf("first entry is not a ClaimResponse")
	}
	urls := map[string]int{}
	crs := 0
	for i, e := range b.Entry {
		if e.FullURL == "" || e.Resource == nil {
			t.Errorf("entry %d lacks fullUrl or resource", i)
		}
		if e.Request != nil || e.Response != nil || e.Search != nil {
			t.Errorf("entry %d carries request/response/search", i)
		}
		if !strings.HasPrefix(e.FullURL, "urn:uuid:") && !strings.HasPrefix(e.FullURL, "http") {
			t.Errorf("entry %d fullUrl %q is neither absolute nor urn:uuid", i, e.FullURL)
		}
		urls[e.FullURL]++
		if e.Resource["resourceType"] == "ClaimResponse" {
			crs++
		}
	}
	if crs != 1 {
		t.Errorf("%d ClaimResponses, want exactly 1", crs)
	}
	for u, n := range urls {
		if n > 1 {
			t.Errorf("fullUrl %s appears %d times", u, n)
		}
	}
	cr := b.Entry[0].Resource
	for k, want := range map[string]string{"status": "active", "use": "preauthorization"} {
		if cr[k] != want {
			t.Errorf("ClaimResponse.%s = %v, want %s", k, cr[k], want)
		}
	}
	switch cr["outcome"] {
	case "complete", "error", "partial":
	default:
		t.Errorf("ClaimResponse.outcome = %v", cr["outcome"])
	}
	for _, k := range []string{"patient", "insurer", "request", "created", "type"} {
		if cr[k] == nil {
			t.Errorf("ClaimResponse.%s missing", k)
		}
	}
	// Every reference in the ClaimResponse except request resolves to exactly one entry.
	for _, ref := range refsIn(cr, "") {
		if ref.path == ".request" {
			continue
		}
		if urls[ref.value] != 1 {
			t.Errorf("ClaimResponse%s → %q does not resolve to one entry", ref.path, ref.value)
		}
	}
	items := map[int]itemResult{}
	list, _ := cr["item"].([]any)
	for _, raw := range list {
		it := raw.(map[string]any)
		seq := int(it["itemSequence"].(float64))
		res := itemResult{Sequence: seq}
		adj, _ := it["adjudication"].([]any)
		if len(adj) == 0 {
			t.Errorf("item %d has no adjudication", seq)
			continue
		}
		a := adj[0].(map[string]any)
		if code := codeOf(a["category"]); code != "submitted" {
			t.Errorf("item %d adjudication category %q, want submitted", seq, code)
		}
		for _, ext := range exts(a) {
			if !strings.HasSuffix(ext["url"].(string), "extension-reviewAction") {
				continue
			}
			for _, sub := range exts(ext) {
				switch u := sub["url"].(string); {
				case strings.HasSuffix(u, "extension-reviewActionCode"):
					cc := sub["valueCodeableConcept"].(map[string]any)
					c := cc["coding"].([]any)[0].(map[string]any)
					if c["system"] != "https://codesystem.x12.org/005010/306" {
						t.Errorf("item %d review action system %v", seq, c["system"])
					}
					res.ReviewAction = c["code"].(string)
				case u == "reasonCode":
					res.Reasons = append(res.Reasons, codeOf(sub["valueCodeableConcept"]))
				case u == "number":
					res.Number, _ = sub["valueString"].(string)
				}
			}
		}
		if res.ReviewAction == "" {
			t.Errorf("item %d has no reviewAction code", seq)
		}
		if _, dup := items[seq]; dup {
			t.Errorf("item sequence %d answered twice", seq)
		}
		items[seq] = res
		for _, ext := range exts(it) {
			if strings.HasSuffix(ext["url"].(string), "extension-itemAuthorizedProvider") {
				typed := false
				for _, sub := range exts(ext) {
					if strings.HasSuffix(sub["url"].(string), "extension-authorizedProviderType") {
						typed = true
					}
				}
				if !typed {
					t.Errorf("item %d itemAuthorizedProvider lacks providerType", seq)
				}
			}
		}
	}
	return cr, items
}

type refAt struct{ path, value string }

func refsIn(v any, path string) []refAt {
	var out []refAt
	switch t := v.(type) {
	case map[string]any:
		if r, ok := t["reference"].(string); ok {
			out = append(out, refAt{path, r})
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, refsIn(t[k], path+"."+k)...)
		}
	case []any:
		for i, c := range t {
			out = append(out, refsIn(c, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}

func exts(m map[string]any) []map[string]any {
	list, _ := m["extension"].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, e := range list {
		out = append(out, e.(map[string]any))
	}
	return out
}

func codeOf(cc any) string {
	m, _ := cc.(map[string]any)
	codings, _ := m["coding"].([]any)
	if len(codings) == 0 {
		return ""
	}
	c, _ := codings[0].(map[string]any)
	s, _ := c["code"].(string)
	return s
}

// requestSequences lists the item sequences of the first Claim in a request Bundle.
func requestSequences(t *testing.T, body []byte) []int {
	t.Helper()
	b := decodeBundle(t, body)
	var seqs []int
	items, _ := b.Entry[0].Resource["item"].([]any)
	for _, it := range items {
		seqs = append(seqs, int(it.(map[string]any)["sequence"].(float64)))
	}
	sort.Ints(seqs)
	return seqs
}

// checkOutcome asserts a single OperationOutcome with an error issue,
// optionally at an expression, whose diagnostics contain want.
func checkOutcome(t *testing.T, body []byte, expression, want string) {
	t.Helper()
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Severity    string   `json:"severity"`
			Code        string   `json:"code"`
			Diagnostics string   `json:"diagnostics"`
			Expression  []string `json:"expression"`
		} `json:"issue"`
	}
	if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" {
		t.Fatalf("body is not an OperationOutcome: %s", body)
	}
	for _, is := range oo.Issue {
		if is.Severity != "error" && is.Severity != "fatal" {
			continue
		}
		if !strings.Contains(is.Diagnostics, want) {
			continue
		}
		if expression == "" || (len(is.Expression) > 0 && is.Expression[0] == expression) {
			return
		}
	}
	t.Errorf("no error issue at %q mentioning %q in %s", expression, want, body)
}
