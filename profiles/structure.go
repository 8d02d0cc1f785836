package profiles

import (
	"fmt"
	"strconv"
	"strings"
)

// sdef is a compiled StructureDefinition: its snapshot as a tree.
type sdef struct {
	url, version, name, typ, kind, derivation, baseDef string
	abstract                                           bool
	pkg                                                int
	root                                               *edef
	byID                                               map[string]*edef
	byPath                                             map[string]*edef // first element per path (no slices)
	contexts                                           []extContext     // for extensions
	modifier                                           bool             // extension SD with isModifier
}

type extContext struct{ typ, expr string }

type etype struct {
	code     string
	profiles []string
	targets  []string
}

type constraint struct {
	key, severity, human, expr string
}

type discriminator struct{ typ, path string }

type slicing struct {
	disc    []discriminator
	rules   string // closed | open | openAtEnd
	ordered bool
}

// edef is one element of a snapshot.
type edef struct {
	sd          *sdef
	id, path    string
	name        string // last path segment, e.g. "value[x]"
	choiceBase  string // "value" for "value[x]"
	sliceName   string
	min         int
	max         int // -1 = *
	baseMax     int // -1 = *; whether the element repeats in the base type
	types       []etype
	contentRef  string
	fixed       *jval
	pattern     *jval
	bindStr     string
	bindVS      string
	constraints []constraint
	slicing     *slicing
	slices      []*edef
	children    []*edef
	pos         int // this element's index in its parent's children
	childIdx    map[string]*edef
	choices     []*edef // children whose name ends in [x]
	isModifier  bool
	maxLength   int
}

func (d *edef) repeats() bool { return d.baseMax != 1 && d.baseMax != 0 }

func parseMax(s string) int {
	if s == "*" || s == "" {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

func jstrs(v *jval) []string {
	if v == nil {
		return nil
	}
	var out []string
	for _, x := range v.arr {
		if x.kind == jStr {
			out = append(out, x.s)
		}
	}
	return out
}

func compileSD(data []byte, pkg int) (*sdef, error) {
	v, err := parseJSON(data)
	if err != nil {
		return nil, err
	}
	sd := &sdef{
		url:        v.get("url").str(),
		version:    v.get("version").str(),
		name:       v.get("name").str(),
		typ:        v.get("type").str(),
		kind:       v.get("kind").str(),
		derivation: v.get("derivation").str(),
		baseDef:    v.get("baseDefinition").str(),
		abstract:   v.get("abstract").str() == "true",
		pkg:        pkg,
		byID:       map[string]*edef{},
		byPath:     map[string]*edef{},
	}
	if c := v.get("context"); c != nil {
		for _, x := range c.arr {
			sd.contexts = append(sd.contexts, extContext{x.get("type").str(), x.get("expression").str()})
		}
	}
	snap := v.get("snapshot").get("element")
	if snap == nil || len(snap.arr) == 0 {
		return nil, fmt.Errorf("%s has no snapshot", sd.url)
	}
	for i, ev := range snap.arr {
		d := &edef{sd: sd, max: parseMax(ev.get("max").str()), maxLength: -1}
		d.path = ev.get("path").str()
		d.id = ev.get("id").str()
		if d.id == "" {
			d.id = d.path
		}
		d.name = d.path[strings.LastIndexByte(d.path, '.')+1:]
		if strings.HasSuffix(d.name, "[x]") {
			d.choiceBase = strings.TrimSuffix(d.name, "[x]")
		}
		d.sliceName = ev.get("sliceName").str()
		if m := ev.get("min"); m != nil {
			d.min, _ = strconv.Atoi(m.s)
		}
		d.baseMax = d.max
		if b := ev.get("base"); b != nil && b.get("max") != nil {
			d.baseMax = parseMax(b.get("max").str())
		}
		for _, t := range ev.get("type").arrOrNil() {
			d.types = append(d.types, etype{code: t.get("code").str(), profiles: jstrs(t.get("profile")), targets: jstrs(t.get("targetProfile"))})
		}
		d.contentRef = ev.get("contentReference").str()
		d.isModifier = ev.get("isModifier").str() == "true"
		if ml := ev.get("maxLength"); ml != nil {
			d.maxLength, _ = strconv.Atoi(ml.s)
		}
		for _, f := range ev.obj {
			switch {
			case strings.HasPrefix(f.name, "fixed"):
				d.fixed = f.val
			case strings.HasPrefix(f.name, "pattern"):
				d.pattern = f.val
			}
		}
		if b := ev.get("binding"); b != nil {
			d.bindStr, d.bindVS = b.get("strength").str(), b.get("valueSet").str()
		}
		for _, c := range ev.get("constraint").arrOrNil() {
			if c.get("expression") == nil {
				continue
			}
			d.constraints = append(d.constraints, constraint{
				key: c.get("key").str(), severity: c.get("severity").str(),
				human: c.get("human").str(), expr: c.get("expression").str(),
			})
		}
		if s := ev.get("slicing"); s != nil {
			sl := &slicing{rules: s.get("rules").str(), ordered: s.get("ordered").str() == "true"}
			for _, x := range s.get("discriminator").arrOrNil() {
				sl.disc = append(sl.disc, discriminator{x.get("type").str(), x.get("path").str()})
			}
			d.slicing = sl
		}
		sd.byID[d.id] = d
		if i == 0 {
			sd.root = d
			sd.byPath[d.path] = d
			sd.modifier = d.isModifier
			continue
		}
		if d.sliceName != "" && strings.HasSuffix(d.id, ":"+d.sliceName) {
			base := sd.byID[strings.TrimSuffix(d.id, ":"+d.sliceName)]
			if base != nil {
				base.slices = append(base.slices, d)
				continue
			}
		}
		if _, ok := sd.byPath[d.path]; !ok && !strings.Contains(d.id, ":") {
			sd.byPath[d.path] = d
		}
		parent := findParent(sd, d.id)
		if parent == nil {
			return nil, fmt.Errorf("%s: element %s has no parent", sd.url, d.id)
		}
		d.pos = len(parent.children)
		parent.children = append(parent.children, d)
	}
	for _, d := range sd.byID {
		if len(d.children) == 0 {
			continue
		}
		d.childIdx = make(map[string]*edef, len(d.children))
		for _, c := range d.children {
			d.childIdx[c.name] = c
			if c.choiceBase != "" {
				d.choices = append(d.choices, c)
			}
		}
	}
	return sd, nil
}

func findParent(sd *sdef, id string) *edef {
	for i := len(id) - 1; i > 0; i-- {
		if id[i] == '.' {
			if p := sd.byID[id[:i]]; p != nil {
				return p
			}
		}
	}
	return nil
}

func (v *jval) str() string {
	if v == nil {
		return ""
	}
	return v.s
}

func (v *jval) arrOrNil() []*jval {
	if v == nil {
		return nil
	}
	return v.arr
}

// isPrimitiveType reports whether a type code names a FHIR primitive.
func isPrimitiveType(code string) bool {
	if strings.HasPrefix(code, "http://hl7.org/fhirpath/System.") {
		return true
	}
	return code != "" && code[0] >= 'a' && code[0] <= 'z'
}

// isResourceTypeCode reports whether a type code is abstract Resource or
// a resource name (Bundle.entry.resource, contained, Parameters).
func (r *Registry) isResourceType(code string) bool {
	if code == "Resource" || code == "DomainResource" {
		return true
	}
	if isPrimitiveType(code) {
		return false
	}
	sd := r.typeSD(code)
	return sd != nil && sd.kind == "resource"
}
