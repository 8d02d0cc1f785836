package profiles

import (
	"strings"
)

// Validation of extensions.

func (x *run) extension(e *elem, d *edef) {
	url := e.str("url")
	hasValue, hasExt := false, false
	for _, k := range e.kids {
		if k.fname == "value" || strings.HasPrefix(k.name, "value") {
			hasValue = true
		}
		if k.fname == "extension" {
			hasExt = true
		}
	}
	if hasValue && hasExt {
		x.add(SeverityError, "invariant", e, "", "Constraint failed: ext-1: 'Must have either extensions or value[x], not both'")
	}
	if url == "" {
		x.add(SeverityError, "required", e, "", "An extension must have a url")
		return
	}
	if e.parent != nil && e.parent.typ == "Extension" && !strings.Contains(url, ":") {
		return // a sub-extension of a complex extension, named by a relative url
	}
	modifier := e.fname == "modifierExtension"
	var sd *sdef
	if len(d.types) > 0 && len(d.types[0].profiles) > 0 {
		sd, _ = x.r.structure(d.types[0].profiles[0], d.sd.pkg)
	}
	if sd == nil {
		var err error
		sd, err = x.r.structure(url, d.sd.pkg)
		if err != nil || sd.typ != "Extension" {
			if modifier {
				x.add(SeverityError, "extension", e, "", "Unknown modifier extension '%s': a modifier extension that is not understood must be rejected", url)
			} else {
				x.add(SeverityWarning, "extension", e, "", "Unknown extension '%s'", url)
			}
			return
		}
	}
	if sd.modifier && !modifier {
		x.add(SeverityError, "extension", e, canon(sd), "Extension %s is a modifier extension, so it must be used in modifierExtension", url)
	}
	if !sd.modifier && modifier {
		x.add(SeverityError, "extension", e, canon(sd), "Extension %s is not a modifier extension, so it must not be used in modifierExtension", url)
	}
	x.extContext(e, sd)
}

func (x *run) extContext(e *elem, sd *sdef) {
	if len(sd.contexts) == 0 || e.parent == nil {
		return
	}
	p := e.parent
	ppath := fhirPath(p)
	dpath := x.definitionPath(ppath)
	ptype := p.typ
	if p.resType != "" {
		ptype = p.resType
	}
	// Contexts may also name the path from a datatype: Dosage.timing.
	typed := map[string]bool{}
	suffix := p.fname
	for a := p.parent; a != nil && p.resType == ""; a = a.parent {
		if a.typ != "" {
			typed[a.typ+"."+suffix] = true
		}
		if a.resType != "" {
			break
		}
		suffix = a.fname + "." + suffix
	}
	var allowed []string
	for _, c := range sd.contexts {
		if c.typ != "element" && c.typ != "" {
			return // fhirpath / extension contexts are not checked
		}
		expr := strings.ReplaceAll(c.expr, "[x]", "")
		if i := strings.IndexByte(expr, '#'); i >= 0 {
			expr = expr[i+1:]
		}
		allowed = append(allowed, c.expr)
		switch {
		case expr == "Element" || expr == "Base":
			return
		case expr == ppath || expr == dpath || expr == ptype || typed[expr]:
			return
		case (expr == "Resource" || expr == "DomainResource") && p.resType != "":
			return
		case expr == "BackboneElement" && ptype == "BackboneElement":
			return
		case strings.HasSuffix(ppath, "."+expr) && !strings.Contains(expr, "."):
			return
		}
	}
	if reason := knownContextDefect(sd.url, ppath); reason != "" && !x.v.strict {
		x.add(SeverityWarning, "extension", e, canon(sd), "The extension %s is not allowed to be used at this point (%s); accepted as a known IG defect: %s", sd.url, ppath, reason)
		return
	}
	x.add(SeverityError, "extension", e, canon(sd), "The extension %s is not allowed to be used at this point (%s); allowed contexts: %s", sd.url, ppath, strings.Join(allowed, ", "))
}

// definitionPath is the path of the base definition an instance path
// follows, through contentReference: Questionnaire.item.item.answerOption
// is defined as Questionnaire.item.answerOption (Questionnaire.item.item
// refers to #Questionnaire.item). It is path itself when it has no such
// step or cannot be followed.
func (x *run) definitionPath(path string) string {
	segs := strings.Split(path, ".")
	sd := x.r.typeSD(segs[0])
	if sd == nil {
		return path
	}
	cur := segs[0]
	for _, seg := range segs[1:] {
		d := sd.byPath[cur+"."+seg]
		if d == nil {
			return path
		}
		cur = d.path
		if ref := d.contentRef; ref != "" {
			if i := strings.IndexByte(ref, '#'); i >= 0 {
				ref = ref[i+1:]
			}
			cur = ref
		}
	}
	return cur
}

// fhirPath is the element's definition path: Claim.item.extension.
func fhirPath(e *elem) string {
	var segs []string
	x := e
	for ; x != nil && x.resType == ""; x = x.parent {
		segs = append(segs, x.fname)
	}
	if x != nil {
		segs = append(segs, x.resType)
	}
	for i, j := 0, len(segs)-1; i < j; i, j = i+1, j-1 {
		segs[i], segs[j] = segs[j], segs[i]
	}
	return strings.Join(segs, ".")
}
