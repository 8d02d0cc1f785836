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
