package server_test

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/priora/priora/conformance/check"
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
type itemResult = check.PASItem

// checkPASResponse asserts the PAS Response Bundle rules (the shared
// checker, conformance/check) and returns the ClaimResponse and its item
// results by sequence.
func checkPASResponse(t *testing.T, body []byte) (map[string]any, map[int]itemResult) {
	t.Helper()
	b, err := check.Decode(body)
	if err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, body)
	}
	r, fs := check.PASResponse(b, check.PASOptions{})
	for _, f := range fs {
		t.Errorf("%s", f)
	}
	if r == nil {
		t.FailNow()
	}
	items := map[int]itemResult{}
	for _, it := range r.Items {
		items[it.Sequence] = it
	}
	return r.ClaimResponse, items
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
