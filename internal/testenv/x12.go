package testenv

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/priora/priora/profiles"
)

// X12Coding is a coding from an X12 code system found in a document, at
// its FHIRPath location (choice elements spelt as in JSON).
type X12Coding struct {
	Path, System, Code string
	Extension          string // URL of the innermost extension holding it, if any
}

// X12Codings lists every coding of doc whose system is an X12 code system
// (https://codesystem.x12.org/...).
func X12Codings(t testing.TB, doc []byte) []X12Coding {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("X12Codings: %v", err)
	}
	root := ""
	if m, ok := v.(map[string]any); ok {
		root, _ = m["resourceType"].(string)
	}
	var out []X12Coding
	var walk func(v any, path, ext string)
	walk = func(v any, path, ext string) {
		switch x := v.(type) {
		case map[string]any:
			if u, ok := x["url"].(string); ok && strings.Contains(path, "xtension[") {
				ext = u
			}
			if sys, ok := x["system"].(string); ok && strings.HasPrefix(sys, "https://codesystem.x12.org/") {
				code, _ := x["code"].(string)
				out = append(out, X12Coding{path, sys, code, ext})
			}
			for k, c := range x {
				walk(c, path+"."+k, ext)
			}
		case []any:
			for i, c := range x {
				walk(c, path+"["+strconv.Itoa(i)+"]", ext)
			}
		}
	}
	walk(v, root, "")
	return out
}

var ofType = regexp.MustCompile(`\.ofType\((\w+)\)`)

// unboundX12 are the X12-coded extensions PAS profiles carry without a
// binding on ClaimResponse.addItem, which repeats the requested item's
// extensions: profile-claim binds them on Claim.item to the X12 value sets
// of data elements 1345 and 1337 (the same system Priora repeats),
// profile-claimresponse leaves them unbound on addItem.
var unboundX12 = map[string]bool{
	"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-nursingHomeResidentialStatus": true,
	"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-nursingHomeLevelOfCare":       true,
}

var addItem = regexp.MustCompile(`^Bundle\.entry\[\d+\]\.resource\.addItem\[\d+\]\.extension\[\d+\]\.valueCodeableConcept\.coding\[\d+\]$`)

// RequireX12Bound fails the test for every X12 coding of doc that res
// (doc's validation result) does not show checked against the value set
// its element is bound to, or shows not to fit it: Priora must emit an X12
// system only where a binding names it. An X12 code system's codes are not
// published, so the validator reports each such coding it checked as
// information naming the value set; a system the value set does not draw
// on is an error or an X12 data element mismatch warning (code-invalid).
func RequireX12Bound(t testing.TB, what string, doc []byte, res profiles.Result) {
	t.Helper()
	issuesAt := map[string][]profiles.Issue{}
	for _, is := range res.Issues {
		p := ofType.ReplaceAllString(is.Expression, "$1")
		issuesAt[p] = append(issuesAt[p], is)
	}
	for _, c := range X12Codings(t, doc) {
		parent := c.Path
		if i := strings.LastIndex(parent, ".coding["); i >= 0 {
			parent = parent[:i]
		}
		checked := false
		for _, is := range append(append(issuesAt[c.Path], issuesAt[parent]...), issuesAt[c.Path+".code"]...) {
			switch {
			case is.Code == "code-invalid":
				t.Errorf("%s: %s %s|%s: %s", what, c.Path, c.System, c.Code, is.Diagnostics)
				checked = true
			case strings.Contains(is.Diagnostics, "value set"):
				checked = true
			}
		}
		if !checked && unboundX12[c.Extension] && addItem.MatchString(c.Path) {
			continue
		}
		if !checked {
			t.Errorf("%s: %s carries %s|%s where no value set binding names an X12 system", what, c.Path, c.System, c.Code)
		}
	}
}
