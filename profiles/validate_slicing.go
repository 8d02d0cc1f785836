package profiles

import (
	"strings"
)

// Validation of slicing.

func (x *run) sliced(parent *elem, cd *edef, items []*elem, src string) {
	assigned := make([]*edef, len(items))
	counts := make(map[*edef][]*elem, len(cd.slices))
	for i, it := range items {
		for _, s := range cd.slices {
			if x.sliceMatch(it, cd, s) {
				assigned[i] = s
				counts[s] = append(counts[s], it)
				break
			}
		}
	}
	for i, it := range items {
		if s := assigned[i]; s != nil {
			x.walk(it, s, nil)
			continue
		}
		if cd.slicing.rules == "closed" {
			x.add(SeverityError, "structure", it, src, "This element does not match any known slice defined in the profile %s, and slicing on %s is closed", src, cd.path)
		}
		x.walk(it, cd, nil)
	}
	for _, s := range cd.slices {
		x.cardinality(parent, s, counts[s], cd.path+":"+s.sliceName, src)
	}
}

func (x *run) sliceMatch(it *elem, cd, s *edef) bool {
	if len(cd.slicing.disc) == 0 {
		return false
	}
	for _, dsc := range cd.slicing.disc {
		switch dsc.typ {
		case "value", "pattern":
			if dsc.path == "url" && (cd.name == "extension" || cd.name == "modifierExtension") {
				if !sameURL(it.str("url"), extSliceURL(s)) {
					return false
				}
				continue
			}
			want := x.discValue(s, dsc.path)
			if want == nil {
				// A binding at the path discriminates by membership;
				// otherwise the slice does not constrain this path.
				if dd := x.navDef(s, dsc.path); dd != nil && dd.bindVS != "" && dd.bindStr == "required" {
					if !x.inBinding(navElems([]*elem{it}, dsc.path), dd) {
						return false
					}
				}
				continue
			}
			got := navElems([]*elem{it}, dsc.path)
			ok := false
			for _, g := range got {
				if matchPattern(g, want) {
					ok = true
					break
				}
			}
			if !ok {
				return false
			}
		case "type":
			var got []*elem
			if dsc.path == "$this" {
				got = []*elem{it}
			} else {
				got = navElems([]*elem{it}, dsc.path)
			}
			dd := x.navDef(s, dsc.path)
			if dd == nil || len(got) == 0 {
				return false
			}
			ok := false
			for _, g := range got {
				gt := g.resType
				if gt == "" {
					gt = g.typ
					if g.choice != "" {
						gt = g.choice
					}
				}
				for _, t := range dd.types {
					if strings.EqualFold(typeSuffix(t.code), typeSuffix(gt)) {
						ok = true
					}
				}
			}
			if !ok {
				return false
			}
		case "exists":
			dd := x.navDef(s, dsc.path)
			if dd == nil {
				return false
			}
			if (len(navElems([]*elem{it}, dsc.path)) > 0) != (dd.min > 0) {
				return false
			}
		case "profile":
			// Approximated by type: the referenced (or resolved) resource
			// must be of a type one of the slice's target profiles allows.
			path := strings.TrimSuffix(strings.TrimSuffix(dsc.path, ".resolve()"), "resolve()")
			dd := x.navDef(s, path)
			if dd == nil {
				continue
			}
			allowed := map[string]bool{}
			for _, t := range dd.types {
				for _, tp := range append(append([]string{}, t.targets...), t.profiles...) {
					if sd, err := x.r.structure(tp, dd.sd.pkg); err == nil {
						allowed[sd.typ] = true
					}
				}
			}
			if len(allowed) == 0 || allowed["Resource"] {
				continue
			}
			ok := false
			for _, g := range navElems([]*elem{it}, path) {
				typ := g.resType
				if ref := g.str("reference"); ref != "" {
					if t := x.resolveRef(ref, g); t != nil {
						typ = t.resType
					} else if parts := strings.Split(strings.SplitN(ref, "/_history/", 2)[0], "/"); len(parts) >= 2 {
						typ = parts[len(parts)-2]
					}
				}
				ok = ok || allowed[typ]
			}
			if !ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// inBinding reports whether some coded value in els may be in d's value
// set (codes that cannot be checked locally count as members).
func (x *run) inBinding(els []*elem, d *edef) bool {
	vs := x.r.valueSet(d.bindVS, d.sd.pkg)
	if !vs.found {
		// An unavailable (licensed) value set: codes from systems known
		// locally cannot be in it.
		for _, e := range els {
			for _, c := range append(e.child("coding"), e) {
				if sys := c.str("system"); sys != "" {
					if cs := x.r.codeSystem(sys, d.sd.pkg); cs == nil {
						return true
					}
				}
			}
		}
		return false
	}
	for _, e := range els {
		var codings []*elem
		switch {
		case e.prim != nil:
			if x.r.contains(vs, "", e.prim.s, d.sd.pkg) != memberNo {
				return true
			}
			continue
		case e.first("coding") != nil:
			codings = e.child("coding")
		default:
			codings = []*elem{e}
		}
		for _, c := range codings {
			if x.r.contains(vs, c.str("system"), c.str("code"), d.sd.pkg) != memberNo {
				return true
			}
		}
	}
	return false
}

func extSliceURL(s *edef) string {
	if u := s.childIdx["url"]; u != nil && u.fixed != nil {
		return u.fixed.s
	}
	if len(s.types) > 0 && len(s.types[0].profiles) > 0 {
		return s.types[0].profiles[0]
	}
	return ""
}

// splitPath splits a discriminator path on dots outside parentheses.
func splitPath(p string) []string {
	var out []string
	depth, start := 0, 0
	inq := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\'':
			inq = !inq
		case inq:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == '.' && depth == 0:
			out = append(out, p[start:i])
			start = i + 1
		}
	}
	return append(out, p[start:])
}

// discValue finds the fixed or pattern value a slice requires at path.
func (x *run) discValue(s *edef, path string) *jval {
	d := s
	segs := splitPath(path)
	for i, seg := range segs {
		if seg == "$this" {
			continue
		}
		if pv := patternOf(d); pv != nil && i > 0 {
			return navJSON(pv, segs[i:])
		}
		if strings.HasPrefix(seg, "ofType(") || strings.HasPrefix(seg, "as(") || strings.HasPrefix(seg, "resolve(") {
			continue
		}
		d = x.childDef(d, seg)
		if d == nil {
			return nil
		}
	}
	return patternOf(d)
}

func patternOf(d *edef) *jval {
	if d.fixed != nil {
		return d.fixed
	}
	return d.pattern
}

func navJSON(v *jval, segs []string) *jval {
	for _, seg := range segs {
		if seg == "$this" || strings.Contains(seg, "(") {
			continue
		}
		nv := v.get(seg)
		if nv == nil {
			return nil
		}
		if nv.kind == jArr {
			if len(nv.arr) == 0 {
				return nil
			}
			nv = nv.arr[0]
		}
		v = nv
	}
	return v
}

// navDef follows a discriminator path through definitions.
func (x *run) navDef(s *edef, path string) *edef {
	d := s
	for _, seg := range splitPath(path) {
		if seg == "$this" || strings.HasPrefix(seg, "ofType(") || strings.HasPrefix(seg, "as(") {
			continue
		}
		d = x.childDef(d, seg)
		if d == nil {
			return nil
		}
	}
	return d
}

// childDef returns the child definition named by one path segment,
// including extension('url') and choice names.
func (x *run) childDef(d *edef, seg string) *edef {
	kids := d
	if len(d.children) == 0 {
		var t etype
		if len(d.types) > 0 {
			t = d.types[0]
		}
		kids, _ = x.childrenDef(&elem{}, d, t)
		if kids == nil {
			return nil
		}
	}
	if strings.HasPrefix(seg, "extension(") {
		url := strings.Trim(seg[len("extension("):len(seg)-1], "'\"")
		ext := kids.childIdx["extension"]
		if ext == nil {
			return nil
		}
		for _, sl := range ext.slices {
			if sameURL(extSliceURL(sl), url) {
				return sl
			}
		}
		return nil
	}
	if c := kids.childIdx[seg]; c != nil {
		return c
	}
	return kids.childIdx[seg+"[x]"]
}

// navElems follows a discriminator path through the instance.
func navElems(cur []*elem, path string) []*elem {
	for _, seg := range splitPath(path) {
		if seg == "$this" {
			continue
		}
		var next []*elem
		switch {
		case strings.HasPrefix(seg, "extension("):
			url := strings.Trim(seg[len("extension("):len(seg)-1], "'\"")
			for _, c := range cur {
				for _, k := range c.kids {
					if k.fname == "extension" && k.str("url") == url {
						next = append(next, k)
					}
				}
			}
		case strings.HasPrefix(seg, "ofType(") || strings.HasPrefix(seg, "as("):
			t := seg[strings.IndexByte(seg, '(')+1 : len(seg)-1]
			for _, c := range cur {
				if typeMatches(fpValue{e: c}, t) || strings.EqualFold(c.choice, t) {
					next = append(next, c)
				}
			}
		case strings.HasPrefix(seg, "resolve("):
			next = cur
		default:
			for _, c := range cur {
				for _, k := range c.kids {
					if k.fname == seg || k.name == seg || choiceMatch(k.name, seg) {
						next = append(next, k)
					}
				}
			}
		}
		cur = next
	}
	return cur
}
