package profiles

import (
	"sort"
	"strings"
	"testing"
)

// TestEveryConstraintIsEvaluated lists every constraint of every
// StructureDefinition in the embedded packages that the validator does not
// evaluate through FHIRPath: those checked natively or deliberately not at
// all (nativeInvariants, each with its reason), and those whose expression
// the engine cannot compile. The second list must stay empty.
func TestEveryConstraintIsEvaluated(t *testing.T) {
	r := registry(t)
	var urls []string
	for u := range r.byURL {
		urls = append(urls, u)
	}
	sort.Strings(urls)
	total, native := 0, map[string]int{}
	var failing []string
	for _, u := range urls {
		for _, e := range r.byURL[u] {
			if e.Kind != "StructureDefinition" {
				continue
			}
			sd, err := r.compiled(e)
			if err != nil && strings.HasSuffix(err.Error(), "has no snapshot") {
				// R4 core's example-composition and example-section-library:
				// examples of how to profile, with a differential only, which
				// no package builds on and no instance can claim usefully.
				t.Logf("%s: not evaluated: %v", e.URL, err)
				continue
			}
			if err != nil {
				t.Errorf("%s|%s does not compile: %v", e.URL, e.Version, err)
				continue
			}
			for _, d := range sd.byID {
				for _, c := range d.constraints {
					total++
					if nativeInvariants[c.key] != "" {
						native[c.key]++
						continue
					}
					if _, err := r.compileExpr(c.expr); err != nil {
						failing = append(failing, e.URL+"|"+e.Version+" "+d.path+" "+c.key+": "+err.Error())
					}
				}
			}
		}
	}
	sort.Strings(failing)
	if len(failing) > 0 {
		t.Errorf("%d of %d constraints are not evaluated (their expressions do not compile):\n%s", len(failing), total, strings.Join(failing, "\n"))
	}
	for key, n := range native {
		t.Logf("%s (%d places): not evaluated through FHIRPath: %s", key, n, nativeInvariants[key])
	}
	if total < 1000 {
		t.Errorf("only %d constraints found: the walk over the packages is broken", total)
	}
}

// TestExtensionContextsFollowContentReference: an extension whose context
// is Questionnaire.item.answerOption is allowed on the answer options of
// nested items too (Questionnaire.item.item is #Questionnaire.item), as
// in US Core's Questionnaire-prapare-example; on Questionnaire.item itself
// it is still refused.
func TestExtensionContextsFollowContentReference(t *testing.T) {
	v := registry(t).NewValidator(Options{})
	exclusive := []any{map[string]any{"url": "http://hl7.org/fhir/StructureDefinition/questionnaire-optionExclusive", "valueBoolean": true}}
	option := map[string]any{"valueCoding": map[string]any{"system": "http://loinc.org", "code": "LA30122-8"}, "extension": exclusive}
	q := func(nested bool) []byte {
		inner := map[string]any{"linkId": "1.1", "type": "choice", "text": "Which?", "answerOption": []any{option}}
		outer := map[string]any{"linkId": "1", "type": "group", "text": "Group", "item": []any{inner}}
		if !nested {
			outer = map[string]any{"linkId": "1", "type": "choice", "text": "Which?", "extension": exclusive, "answerOption": []any{option}}
		}
		return mutate(t, []byte(`{"resourceType":"Questionnaire","status":"active"}`), set("item", []any{outer}))
	}
	for _, is := range v.Validate(q(true)).Issues {
		if is.Severity == SeverityError || strings.Contains(is.Diagnostics, "not allowed to be used") {
			t.Errorf("nested answerOption: %s %s: %s", is.Severity, is.Expression, is.Diagnostics)
		}
	}
	found := false
	for _, is := range v.Validate(q(false)).Issues {
		found = found || is.Severity == SeverityError && is.Expression == "Questionnaire.item[0].extension[0]" && strings.Contains(is.Diagnostics, "not allowed to be used at this point (Questionnaire.item)")
	}
	if !found {
		t.Errorf("questionnaire-optionExclusive on Questionnaire.item is not refused")
	}
}
