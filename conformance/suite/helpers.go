package suite

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/priora/priora/profiles"
)

// Generic JSON access: the suite reads answers as decoded JSON, never
// trusting them to have any shape.

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func arr(v any) []any {
	a, _ := v.([]any)
	return a
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func decodeObject(b []byte) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	return m, nil
}

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
