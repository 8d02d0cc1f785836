package profiles

import (
	"regexp"
	"strings"
	"unicode"
)

// Validation of primitives.

var primRe = map[string]*regexp.Regexp{
	"date":         regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$`),
	"dateTime":     regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$`),
	"instant":      regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$`),
	"time":         regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?$`),
	"id":           regexp.MustCompile(`^[A-Za-z0-9\-\.]{1,64}$`),
	"code":         regexp.MustCompile(`^[^\s]+(\s[^\s]+)*$`),
	"oid":          regexp.MustCompile(`^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$`),
	"uuid":         regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`),
	"integer":      regexp.MustCompile(`^-?([0]|([1-9][0-9]*))$`),
	"positiveInt":  regexp.MustCompile(`^\+?[1-9][0-9]*$`),
	"unsignedInt":  regexp.MustCompile(`^[0]|([1-9][0-9]*)$`),
	"decimal":      regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`),
	"base64Binary": regexp.MustCompile(`^(\s*([0-9a-zA-Z\+/=]){4}\s*)+$`),
}

func (x *run) primitive(e *elem, code string, d *edef, src string) {
	if e.kind == jNull {
		return // only "_x": id/extension
	}
	if e.kind == jObj {
		x.add(SeverityError, "structure", e, src, "%s is a primitive (%s), so it must not be a JSON object", d.path, code)
		return
	}
	want := jStr
	switch code {
	case "boolean":
		want = jBool
	case "integer", "positiveInt", "unsignedInt", "decimal", "integer64":
		want = jNum
	}
	if e.prim == nil {
		return
	}
	if e.prim.kind != want {
		x.add(SeverityError, "structure", e, src, "Error parsing JSON: the primitive value must be a %s (type %s)", want, code)
		return
	}
	v := e.prim.s
	if want == jStr && v == "" {
		x.add(SeverityError, "value", e, src, "@value cannot be empty")
		return
	}
	if want == jStr && strings.TrimSpace(v) == "" && code != "string" && code != "markdown" {
		x.add(SeverityError, "value", e, src, "@value cannot be only whitespace")
		return
	}
	if re := primRe[code]; re != nil && !re.MatchString(v) {
		x.add(SeverityError, "value", e, src, "The value '%s' is not a valid %s", v, code)
		return
	}
	switch code {
	case "uri", "url", "canonical":
		if strings.ContainsFunc(v, unicode.IsSpace) {
			x.add(SeverityError, "value", e, src, "URI values cannot contain whitespace ('%s')", v)
		}
	case "string", "markdown":
		if len(v) > 1<<20 {
			x.add(SeverityError, "value", e, src, "string values are limited to 1 MB")
		}
	}
	if d.maxLength > 0 && len([]rune(v)) > d.maxLength {
		x.add(SeverityError, "value", e, src, "The value is %d characters long, more than the maximum %d", len([]rune(v)), d.maxLength)
	}
}
