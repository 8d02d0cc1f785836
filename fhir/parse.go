package fhir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
)

// MaxDepth is the deepest JSON nesting Priora accepts in any request body
// (the server checks it before decoding, the parser again). Real PAS and
// CRD payloads stay below 20; anything deeper is hostile or broken.
const MaxDepth = 64

// Parser checks FHIR R4 JSON against the base specification with google/fhir's
// validating unmarshaller: unknown elements, primitive formats, required-bound
// codes, base cardinality and typed reference targets. It is safe for
// concurrent use.
type Parser struct {
	um *jsonformat.Unmarshaller
}

// NewParser returns a Parser for R4.
func NewParser() (*Parser, error) {
	um, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		return nil, fmt.Errorf("fhir: new unmarshaller: %w", err)
	}
	um.MaxNestingDepth = MaxDepth
	return &Parser{um: um}, nil
}

// Check validates raw as an R4 resource and returns an Invalid *Error listing
// every finding, or nil. It never panics on hostile input.
func (p *Parser) Check(raw []byte) (err error) {
	if err := CheckDepth(raw, MaxDepth); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = InvalidAt("structure", "", "the resource could not be parsed as FHIR R4 JSON")
		}
	}()
	if _, perr := p.um.Unmarshal(raw); perr != nil {
		return parseError(perr, raw)
	}
	return nil
}

// parseError turns google/fhir's error text, one finding per line in the
// form `error at "Path": details`, into issues whose expressions are
// FHIRPaths into raw (parseLocation); an unknown element is named.
func parseError(err error, raw []byte) error {
	e := &Error{Kind: Invalid, Message: "the body is not valid FHIR R4 JSON", Err: err}
	named := map[string]bool{}
	var doc any
	_ = json.Unmarshal(raw, &doc) // on failure locations stay as google/fhir gave them
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		expr, msg := "", line
		if rest, ok := strings.CutPrefix(line, "error at \""); ok {
			if i := strings.Index(rest, "\": "); i >= 0 {
				expr, msg = rest[:i], rest[i+3:]
			}
		}
		code := "structure"
		switch {
		case strings.Contains(msg, "missing required field"):
			code = "required"
		case strings.Contains(msg, "invalid JSON"):
			code = "invalid"
		case strings.Contains(msg, "code type mismatch"), strings.Contains(msg, "invalid"):
			code = "value"
		}
		unknown := msg == "unknown field"
		at := parseLocation(doc, expr, unknown)
		if unknown && len(at.names) > 0 {
			// One line per unknown member, each at the parent: name each once.
			if !named[at.expr] {
				named[at.expr] = true
				for _, n := range at.names {
					e.Issues = append(e.Issues, Issue{Severity: "error", Code: "structure",
						Diagnostics: "unknown element '" + n + "'", Expression: at.expr + "." + n})
				}
			}
			continue
		}
		e.Issues = append(e.Issues, Issue{Severity: "error", Code: code, Diagnostics: msg, Expression: at.expr})
	}
	return e
}

// CheckDepth rejects JSON nested deeper than limit without decoding it.
func CheckDepth(raw []byte, limit int) error {
	depth, inString, escaped := 0, false, false
	for _, c := range raw {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > limit {
				return InvalidAt("too-costly", "", "JSON nesting deeper than %d levels", limit)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// ResourceType returns the resourceType of a JSON resource without decoding
// the rest of it, or an Invalid error when raw is not a JSON object with one.
func ResourceType(raw []byte) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", InvalidAt("required", "", "the request body is empty")
	}
	if raw[0] != '{' {
		return "", InvalidAt("structure", "", "the body is not a JSON object")
	}
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return "", &Error{Kind: Invalid, Message: "invalid JSON", Err: err,
			Issues: []Issue{{Severity: "error", Code: "invalid", Diagnostics: JSONProblem(err)}}}
	}
	if head.ResourceType == "" {
		return "", InvalidAt("required", "", "the JSON object has no resourceType")
	}
	return head.ResourceType, nil
}
