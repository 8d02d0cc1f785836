package profiles

import (
	"strings"
)

// Validation of bindings.

func (x *run) binding(e *elem, d *edef, code, src string) {
	if d.bindVS == "" || (d.bindStr != "required" && d.bindStr != "extensible") {
		return
	}
	type coding struct {
		sys, code string
		at        *elem
	}
	var cs []coding
	switch code {
	case "code":
		if e.prim == nil {
			return
		}
		cs = append(cs, coding{"", e.prim.s, e})
	case "Coding":
		cs = append(cs, coding{e.str("system"), e.str("code"), e})
	case "CodeableConcept":
		for _, c := range e.child("coding") {
			cs = append(cs, coding{c.str("system"), c.str("code"), c})
		}
		if len(cs) == 0 {
			if d.bindStr == "required" {
				x.add(SeverityWarning, "code-invalid", e, src, "No code provided, and a code should be provided from the value set %s (required binding)", d.bindVS)
			}
			return
		}
	case "Quantity", "Age", "Duration", "Distance", "Count", "SimpleQuantity", "MoneyQuantity":
		if e.str("code") == "" {
			return
		}
		cs = append(cs, coding{e.str("system"), e.str("code"), e})
	default:
		return
	}
	vs := x.r.valueSet(d.bindVS, d.sd.pkg)
	if !vs.found {
		if wrong := x12Mismatch(d.bindVS, cs[0].sys); wrong != "" && len(cs) == 1 {
			// A warning: the value set itself cannot be read, and the
			// public PAS test kit sends such codes.
			x.add(SeverityWarning, "code-invalid", cs[0].at, src, "The code system %s is not the one of the value set %s: %s", cs[0].sys, d.bindVS, wrong)
			return
		}
		if isExternalSystem(d.bindVS) {
			x.add(SeverityInformation, "informational", e, src, "Code not validated: the value set %s is licensed or external and not available", d.bindVS)
		} else {
			x.add(SeverityWarning, "not-found", e, src, "The value set %s could not be found, so the code was not validated", d.bindVS)
		}
		return
	}
	unknown := ""
	for _, c := range cs {
		if c.code == "" {
			continue
		}
		switch x.r.contains(vs, c.sys, c.code, d.sd.pkg) {
		case memberYes:
			return
		case memberUnknown:
			if unknown == "" {
				unknown = c.sys
				if unknown == "" {
					unknown = "(no system)"
				}
			}
		}
	}
	if unknown != "" {
		x.add(SeverityInformation, "informational", e, src, "Code not validated: %s is a licensed or external code system (value set %s)", unknown, d.bindVS)
		return
	}
	var shown []string
	for _, c := range cs {
		if c.sys != "" {
			shown = append(shown, c.sys+"#"+c.code)
		} else {
			shown = append(shown, c.code)
		}
	}
	if d.bindStr == "extensible" {
		x.add(SeverityWarning, "code-invalid", e, src, "The code %s is not in the value set %s (%s binding)", strings.Join(shown, ", "), d.bindVS, d.bindStr)
		return
	}
	x.rule("code-invalid", e, src, d.path, "The code %s is not in the value set %s (%s binding)", strings.Join(shown, ", "), d.bindVS, d.bindStr)
}
