package suite

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/priora/priora/conformance/check"
	"github.com/priora/priora/profiles"
)

// Generic JSON access: the suite reads answers as decoded JSON, never
// trusting them to have any shape.

func obj(v any) map[string]any { return check.Obj(v) }

func arr(v any) []any { return check.Arr(v) }

func str(m map[string]any, k string) string { return check.Str(m, k) }

func decodeObject(b []byte) (map[string]any, error) { return check.Decode(b) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// clone deep-copies decoded JSON.
func clone(m map[string]any) map[string]any {
	var out map[string]any
	_ = json.Unmarshal(mustJSON(m), &out)
	return out
}

// issues renders a validation result's errors for a message: at most max
// lines, each with its location.
func issues(r profiles.Result, max int) string {
	errs := r.Errors()
	var b strings.Builder
	for i, is := range errs {
		if i == max {
			fmt.Fprintf(&b, "\n  … and %d more", len(errs)-max)
			break
		}
		fmt.Fprintf(&b, "\n  %s: %s", is.Expression, is.Diagnostics)
	}
	return b.String()
}
