// Package check holds the response checkers that Priora's unit tests
// (hooks/hookstest, server), the test environment and the conformance suite
// share: one CRD (CDS Hooks) checker and one PAS checker. Each returns the
// rules an answer breaks as findings; callers report them in their own way
// (a test error, a suite failure). It imports nothing of Priora's server
// side, so the conformance suite stays a client of any server.
package check

import (
	"encoding/json"
	"fmt"
)

// Finding is one rule an answer breaks.
type Finding struct {
	Rule  string // the rule's id in its specification: "CH-14", "crd-ci-q3", "resp-37"
	Where string // where in the answer, e.g. "cards[0].suggestions[1]"
	Msg   string
	// Warn marks a finding that is a warning (a SHOULD), not a failure.
	Warn bool
}

func (f Finding) String() string {
	if f.Where == "" {
		return f.Rule + ": " + f.Msg
	}
	return f.Rule + ": " + f.Where + ": " + f.Msg
}

type findings []Finding

func (fs *findings) add(rule, where, format string, a ...any) {
	*fs = append(*fs, Finding{Rule: rule, Where: where, Msg: fmt.Sprintf(format, a...)})
}

func (fs *findings) warn(rule, where, format string, a ...any) {
	*fs = append(*fs, Finding{Rule: rule, Where: where, Msg: fmt.Sprintf(format, a...), Warn: true})
}

// Obj, Arr and Str read decoded JSON without trusting its shape: the zero
// value when v (or m[k]) is not an object, an array or a string.
func Obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func Arr(v any) []any {
	a, _ := v.([]any)
	return a
}

func Str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func obj(v any) map[string]any              { return Obj(v) }
func arr(v any) []any                       { return Arr(v) }
func str(m map[string]any, k string) string { return Str(m, k) }

// Decode reads a JSON object.
func Decode(b []byte) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	return m, nil
}
