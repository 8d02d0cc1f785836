package profiles

import (
	"strconv"
	"strings"
)

// Validation of fixed / pattern.

func primEqual(a, b *jval) bool {
	if a.kind != b.kind {
		return false
	}
	if a.kind == jStr && strings.Contains(a.s+b.s, "%5") {
		return urlUnescape.Replace(a.s) == urlUnescape.Replace(b.s)
	}
	if a.kind == jNum {
		fa, ea := strconv.ParseFloat(a.s, 64)
		fb, eb := strconv.ParseFloat(b.s, 64)
		return ea == nil && eb == nil && fa == fb
	}
	return a.s == b.s
}

// matchPattern reports whether e contains everything in pattern p.
func matchPattern(e *elem, p *jval) bool {
	switch p.kind {
	case jObj:
		for _, f := range p.obj {
			kids := e.childByJSON(f.name)
			if f.val.kind == jArr {
				for _, pv := range f.val.arr {
					found := false
					for _, k := range kids {
						if matchPattern(k, pv) {
							found = true
							break
						}
					}
					if !found {
						return false
					}
				}
				continue
			}
			found := false
			for _, k := range kids {
				if matchPattern(k, f.val) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	case jArr:
		return false
	default:
		return e.prim != nil && primEqual(e.prim, p)
	}
}

func (e *elem) childByJSON(name string) []*elem {
	var out []*elem
	for _, k := range e.kids {
		if k.name == name || k.fname == name {
			out = append(out, k)
		}
	}
	return out
}

func describe(v *jval) string {
	switch v.kind {
	case jObj:
		var parts []string
		for _, f := range v.obj {
			if f.val.kind == jArr {
				for _, a := range f.val.arr {
					parts = append(parts, f.name+": "+describe(a))
				}
				continue
			}
			parts = append(parts, f.name+" "+describe(f.val))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case jStr:
		return "'" + v.s + "'"
	}
	return v.s
}

func (x *run) fixedPattern(e *elem, d *edef, src string) {
	if d.fixed != nil && !matchPattern(e, d.fixed) {
		if e.prim != nil {
			x.rule("value", e, src, d.path, "Value is '%s' but must be '%s'%s", e.prim.s, d.fixed.s, from(src))
		} else {
			x.rule("value", e, src, d.path, "The value does not match the fixed value %s%s", describe(d.fixed), from(src))
		}
	}
	if d.pattern != nil && !matchPattern(e, d.pattern) {
		if e.prim != nil {
			x.rule("value", e, src, d.path, "Value is '%s' but must be '%s'%s", e.prim.s, d.pattern.s, from(src))
		} else {
			x.rule("value", e, src, d.path, "The pattern %s defined in the profile was not found%s", describe(d.pattern), from(src))
		}
	}
}
