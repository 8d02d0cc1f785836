package profiles

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Issue severities, as in OperationOutcome.issue.severity.
const (
	SeverityFatal       = "fatal"
	SeverityError       = "error"
	SeverityWarning     = "warning"
	SeverityInformation = "information"
)

// Issue is one finding, shaped like an OperationOutcome.issue.
type Issue struct {
	Severity    string // fatal | error | warning | information
	Code        string // FHIR IssueType: structure, required, value, invariant, code-invalid, extension, not-supported, processing, informational, not-found
	Diagnostics string // human-readable message
	Expression  string // FHIRPath location in the validated document, e.g. Bundle.entry[0].resource.item[1]
	Source      string // canonical (url|version) of the profile whose rule produced the issue; "" for JSON and base-type problems
}

// Result is the outcome of one validation.
type Result struct {
	Issues []Issue
}

// HasErrors reports whether any issue is an error or fatal.
func (r Result) HasErrors() bool { return r.Count(SeverityError)+r.Count(SeverityFatal) > 0 }

// Count returns the number of issues with the given severity.
func (r Result) Count(severity string) int {
	n := 0
	for _, i := range r.Issues {
		if i.Severity == severity {
			n++
		}
	}
	return n
}

// Errors returns the error and fatal issues only.
func (r Result) Errors() []Issue {
	var out []Issue
	for _, i := range r.Issues {
		if i.Severity == SeverityError || i.Severity == SeverityFatal {
			out = append(out, i)
		}
	}
	return out
}

// run is the state of one Validate call.
type run struct {
	v          *Validator
	r          *Registry
	issues     []Issue
	seen       map[Issue]bool
	bundles    map[*elem]*bundleIdx
	done       map[doneKey]*doneVal
	strictRefs bool
	ctxPkg     int
	defaults   func(resType string) []string // profiles for resources that name none
	// defaultsAlways applies defaults to resources that name profiles too.
	defaultsAlways bool
}

type doneKey struct {
	e  *elem
	sd *sdef
}

type doneVal struct {
	busy   bool
	issues []Issue
}

func (x *run) add(sev, code string, e *elem, source, format string, a ...any) {
	path := ""
	if e != nil {
		path = e.path()
	}
	x.addAt(sev, code, path, source, fmt.Sprintf(format, a...))
}

func (x *run) addAt(sev, code, path, source, msg string) {
	is := Issue{Severity: sev, Code: code, Diagnostics: msg, Expression: path, Source: source}
	if x.seen[is] {
		return
	}
	x.seen[is] = true
	x.issues = append(x.issues, is)
}

// capture runs f collecting its issues separately.
func (x *run) capture(f func()) []Issue {
	si, ss := x.issues, x.seen
	x.issues, x.seen = nil, map[Issue]bool{}
	f()
	out := x.issues
	x.issues, x.seen = si, ss
	return out
}

func (x *run) merge(is []Issue) {
	for _, i := range is {
		x.addAt(i.Severity, i.Code, i.Expression, i.Source, i.Diagnostics)
	}
}

func countErrors(is []Issue) int {
	n := 0
	for _, i := range is {
		if i.Severity == SeverityError || i.Severity == SeverityFatal {
			n++
		}
	}
	return n
}

func canon(sd *sdef) string {
	if sd.version != "" {
		return sd.url + "|" + sd.version
	}
	return sd.url
}

var urlUnescape = strings.NewReplacer("%5B", "[", "%5D", "]", "%5b", "[", "%5d", "]")

func sameURL(a, b string) bool {
	a, _, _ = strings.Cut(a, "|")
	b, _, _ = strings.Cut(b, "|")
	return a == b || urlUnescape.Replace(a) == urlUnescape.Replace(b)
}

// resource validates a resource element: against anyOf (profiles imposed by
// context, of which one must match), every meta.profile, and otherwise the
// base definition of its type.
func (x *run) resource(res *elem, anyOf []string, from int) {
	if res.kind != jObj || res.resType == "" {
		x.add(SeverityError, "structure", res, "", "A resource is expected here, with a resourceType")
		return
	}
	if res.resType == "Bundle" {
		x.indexBundle(res)
	}
	var metaSDs []*sdef
	var claims [][]*sdef // per claimed profile, the versions it may be met by
	for _, m := range metaProfiles(res) {
		alts, err := x.r.structureVersions(m, x.ctxPkg)
		if err != nil {
			x.add(SeverityWarning, "not-supported", res.first("meta"), "", "Profile reference '%s' has not been checked because it is unknown", m)
			continue
		}
		metaSDs = append(metaSDs, alts[0])
		claims = append(claims, alts)
	}
	if len(anyOf) == 0 && (len(metaSDs) == 0 || x.defaultsAlways) && x.defaults != nil {
		anyOf = x.defaults(res.resType)
	}
	var sds []*sdef
	if len(anyOf) > 0 {
		var cands []*sdef
		satisfied := false
		for _, p := range anyOf {
			for _, m := range metaSDs {
				if sameURL(m.url, p) {
					satisfied = true
				}
			}
			sd, err := x.r.structure(p, from)
			if err != nil {
				x.add(SeverityWarning, "not-supported", res, "", "Profile '%s' is not available, so the resource was not checked against it", p)
				continue
			}
			cands = append(cands, sd)
		}
		if !satisfied && len(cands) > 0 {
			best, bestN := -1, 0
			var bestIssues []Issue
			for i, sd := range cands {
				is := x.capture(func() { x.walkRoot(res, sd) })
				if n := countErrors(is); best < 0 || n < bestN {
					best, bestN, bestIssues = i, n, is
				}
			}
			x.merge(bestIssues)
		}
	}
	for _, alts := range claims {
		x.claimed(res, alts)
	}
	if len(claims) == 0 && len(anyOf) == 0 {
		sd := x.r.typeSD(res.resType)
		if sd == nil || sd.kind != "resource" {
			x.add(SeverityError, "structure", res, "", "Unknown resource type '%s'", res.resType)
			return
		}
		sds = append(sds, sd)
	}
	for _, sd := range sds {
		x.walkRoot(res, sd)
	}
}

// claimed checks res against a profile it claims in meta.profile. A claim
// without a version that several embedded versions answer (US Core 3.1.1,
// 6.1.0 and 7.0.0 under PAS 2.2.1) is met when res conforms to one of
// them: they are tried in a fixed order (Registry.versions), the first
// without errors is used and reported; when none fits, the findings of the
// one with the fewest errors are.
func (x *run) claimed(res *elem, alts []*sdef) {
	if len(alts) == 1 {
		x.walkRoot(res, alts[0])
		return
	}
	best, bestN := 0, -1
	var bestIssues []Issue
	for i, sd := range alts {
		is := x.capture(func() { x.walkRoot(res, sd) })
		if n := countErrors(is); bestN < 0 || n < bestN {
			best, bestN, bestIssues = i, n, is
		}
		if bestN == 0 {
			break
		}
	}
	x.merge(bestIssues)
	x.add(SeverityInformation, "informational", res, canon(alts[best]), "The unversioned profile claim %s was checked as version %s (of %s)", alts[best].url, alts[best].version, versionList(alts))
}

func versionList(alts []*sdef) string {
	vs := make([]string, len(alts))
	for i, sd := range alts {
		vs[i] = sd.version
	}
	return strings.Join(vs, ", ")
}

func metaProfiles(res *elem) []string {
	var out []string
	if m := res.first("meta"); m != nil {
		for _, p := range m.child("profile") {
			if p.prim != nil {
				out = append(out, p.prim.s)
			}
		}
	}
	return out
}

// walkRoot validates res against one resource profile, once per Validate.
func (x *run) walkRoot(res *elem, sd *sdef) {
	k := doneKey{res, sd}
	if d := x.done[k]; d != nil {
		if !d.busy {
			x.merge(d.issues)
		}
		return
	}
	d := &doneVal{busy: true}
	x.done[k] = d
	if sd.typ != res.resType && sd.kind == "resource" {
		x.add(SeverityError, "structure", res, canon(sd), "The resource is a %s, but profile %s is for %s", res.resType, canon(sd), sd.typ)
		d.busy = false
		return
	}
	d.issues = x.capture(func() { x.walk(res, sd.root, nil) })
	d.busy = false
	x.merge(d.issues)
}

// typeOf picks the type of element e under definition d.
func (x *run) typeOf(e *elem, d *edef) (etype, bool) {
	if e.choice != "" {
		for _, t := range d.types {
			if typeSuffix(t.code) == e.choice {
				return t, true
			}
		}
	}
	if len(d.types) == 1 {
		return d.types[0], true
	}
	if len(d.types) == 0 {
		if d == d.sd.root {
			return etype{code: d.sd.typ}, true
		}
		if d.contentRef != "" {
			return etype{code: "BackboneElement"}, true
		}
	}
	if e.resType != "" {
		for _, t := range d.types {
			if t.code == e.resType || t.code == "Resource" || t.code == "DomainResource" {
				return t, true
			}
		}
	}
	return etype{}, false
}

func typeSuffix(code string) string {
	if i := strings.LastIndexByte(code, '.'); i >= 0 && strings.HasPrefix(code, "http://hl7.org/fhirpath/") {
		code = code[i+1:]
	}
	if code == "" {
		return ""
	}
	return strings.ToUpper(code[:1]) + code[1:]
}

// walk validates element e against definition d. extra holds root
// constraints of a type profile the element conforms to.
func (x *run) walk(e *elem, d *edef, extra []constraint) {
	src := ""
	if d.sd.derivation == "constraint" {
		src = canon(d.sd)
	}
	for _, p := range e.probs {
		x.add(SeverityError, "structure", e, "", "%s", p)
	}
	isRoot := d == d.sd.root
	t, ok := x.typeOf(e, d)
	if !ok {
		if len(d.types) > 1 && e.choice == "" {
			x.add(SeverityError, "structure", e, src, "Cannot determine the type of %s", d.path)
		}
		return
	}
	if e.typ == "" || !isRoot {
		e.typ = t.code
		if strings.HasPrefix(t.code, "http://hl7.org/fhirpath/System.") {
			e.typ = "string"
		}
	}
	if !isRoot && x.r.isResourceType(t.code) {
		if e.kind != jObj || e.resType == "" {
			x.add(SeverityError, "structure", e, src, "A resource is expected at %s", d.path)
			return
		}
		var anyOf []string
		for _, tt := range d.types {
			anyOf = append(anyOf, tt.profiles...)
		}
		if len(anyOf) == 0 && t.code != "Resource" && t.code != "DomainResource" && t.code != e.resType {
			x.add(SeverityError, "structure", e, src, "The resource is a %s, but %s must be a %s", e.resType, d.path, t.code)
			return
		}
		x.resource(e, anyOf, d.sd.pkg)
		return
	}
	if isPrimitiveType(t.code) {
		x.primitive(e, t.code, d, src)
	} else if e.kind != jObj {
		if e.kind != jNull && e.kind != jArr {
			x.add(SeverityError, "structure", e, src, "%s must be a JSON object (type %s), not a %s", d.path, t.code, e.kind)
		}
		return
	}
	x.fixedPattern(e, d, src)
	x.binding(e, d, t.code, src)

	pd, rootCons := x.childrenDef(e, d, t)
	if pd != nil && len(pd.children) > 0 {
		x.children(e, pd)
	} else if len(e.kids) > 0 && !isPrimitiveType(t.code) {
		for _, k := range e.kids {
			x.add(SeverityError, "structure", k, src, "Unrecognized element '%s'", k.name)
		}
	}
	if t.code == "Reference" {
		x.reference(e, t, d.sd.pkg, src)
	}
	if t.code == "Extension" {
		x.extension(e, d)
	}
	var typeCons []constraint
	if !isRoot && !isPrimitiveType(t.code) && t.code != "Extension" && t.code != "BackboneElement" && t.code != "Element" {
		if tsd := x.r.typeSD(t.code); tsd != nil {
			typeCons = tsd.root.constraints
		}
	}
	x.invariants(e, d, src, rootCons, extra, typeCons)
}

// childrenDef finds the definition whose children describe e's children,
// and the root constraints of a type profile applied on the way.
func (x *run) childrenDef(e *elem, d *edef, t etype) (*edef, []constraint) {
	if len(d.children) > 0 {
		return d, nil
	}
	if d.contentRef != "" {
		ref := d.contentRef
		if i := strings.IndexByte(ref, '#'); i >= 0 {
			ref = ref[i+1:]
		}
		if cd := d.sd.byPath[ref]; cd != nil {
			return cd, nil
		}
		if base := x.r.typeSD(d.sd.typ); base != nil {
			if cd := base.byPath[ref]; cd != nil {
				return cd, nil
			}
		}
		return nil, nil
	}
	profiles := t.profiles
	if t.code == "Extension" && len(profiles) == 0 {
		if url := e.str("url"); url != "" {
			if sd, err := x.r.structure(url, d.sd.pkg); err == nil && sd.typ == "Extension" {
				return sd.root, sd.root.constraints
			}
		}
	}
	for _, p := range profiles {
		if sd, err := x.r.structure(p, d.sd.pkg); err == nil {
			return sd.root, sd.root.constraints
		}
	}
	if sd := x.r.typeSD(t.code); sd != nil {
		return sd.root, nil
	}
	return nil, nil
}

func (x *run) children(e *elem, pd *edef) {
	src := ""
	if pd.sd.derivation == "constraint" {
		src = canon(pd.sd)
	}
	groups := make([][]*elem, len(pd.children))
	pos := make(map[*edef]int, len(pd.children))
	for i, c := range pd.children {
		pos[c] = i
	}
	for _, k := range e.kids {
		cd := pd.childIdx[k.name]
		if cd == nil || cd.choiceBase != "" {
			cd = x.matchChoice(pd, k, src)
		}
		if cd == nil {
			if k.name == "fhir_comments" {
				continue
			}
			x.add(SeverityError, "structure", k, src, "Unrecognized element '%s'", k.name)
			continue
		}
		groups[pos[cd]] = append(groups[pos[cd]], k)
	}
	for i, cd := range pd.children {
		items := groups[i]
		if cd.name == "value" && pd.sd.kind == "primitive-type" {
			continue // the primitive value itself, held in elem.prim
		}
		if len(items) > 0 {
			if cd.repeats() && !items[0].inArray {
				x.add(SeverityError, "structure", items[0], src, "%s repeats, so it must be a JSON array", cd.path)
			} else if !cd.repeats() && items[0].inArray {
				x.add(SeverityError, "structure", items[0], src, "%s does not repeat, so it must not be a JSON array", cd.path)
			}
		}
		if cd.slicing != nil && len(cd.slices) > 0 {
			x.sliced(e, cd, items, src)
		} else {
			for _, it := range items {
				x.walk(it, cd, nil)
			}
		}
		x.cardinality(e, cd, items, cd.path, src)
	}
}

func (x *run) cardinality(parent *elem, cd *edef, items []*elem, label, src string) {
	n := len(items)
	if n < cd.min {
		x.rule("required", parent, src, label, "%s: minimum required = %d, but only found %d%s", label, cd.min, n, from(src))
	}
	if cd.max >= 0 && n > cd.max {
		if cd.max == 0 {
			x.rule("structure", items[0], src, label, "%s: max allowed = 0, but found %d (the element is prohibited)%s", label, n, from(src))
		} else {
			x.rule("structure", items[cd.max], src, label, "%s: max allowed = %d, but found %d%s", label, cd.max, n, from(src))
		}
	}
}

// rule reports a broken rule of profile src at the element definition
// path: an error, or a warning when the rule is listed in tolerances.
func (x *run) rule(code string, e *elem, src, path, format string, a ...any) {
	sev, msg := SeverityError, fmt.Sprintf(format, a...)
	if reason := tolerated(src, path); reason != "" && !x.v.strict {
		sev, msg = SeverityWarning, msg+"; tolerated: "+reason
	}
	loc := ""
	if e != nil {
		loc = e.path()
	}
	x.addAt(sev, code, loc, src, msg)
}

func from(src string) string {
	if src == "" {
		return ""
	}
	return " (from " + src + ")"
}

func (x *run) matchChoice(pd *edef, k *elem, src string) *edef {
	for _, c := range pd.choices {
		if !strings.HasPrefix(k.name, c.choiceBase) || len(k.name) <= len(c.choiceBase) {
			continue
		}
		suffix := k.name[len(c.choiceBase):]
		if suffix[0] < 'A' || suffix[0] > 'Z' {
			continue
		}
		for _, t := range c.types {
			if typeSuffix(t.code) == suffix {
				k.fname, k.choice, k.typ = c.choiceBase, suffix, t.code
				return c
			}
		}
		if fhirTypeSuffix[suffix] {
			k.fname, k.choice = c.choiceBase, suffix
			var allowed []string
			for _, t := range c.types {
				allowed = append(allowed, t.code)
			}
			x.add(SeverityError, "structure", k, src, "The type '%s' is not allowed for %s (allowed: %s)", suffix, c.path, strings.Join(allowed, ", "))
			return nil
		}
	}
	return nil
}

// ---- slicing ----

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

// ---- fixed / pattern ----

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

// ---- primitives ----

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

// ---- bindings ----

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

// ---- invariants ----

// nativeInvariants are checked in Go (or deliberately not at all) instead
// of through FHIRPath.
var nativeInvariants = map[string]string{
	"ele-1": "checked natively: empty objects, arrays and values are structure errors",
	"ext-1": "checked natively in extension()",
	"txt-1": "narrative XHTML is not validated",
	"txt-2": "narrative XHTML is not validated",
	"dom-6": "best practice (narrative) only",
}

func (x *run) invariants(e *elem, d *edef, src string, more ...[]constraint) {
	seen := map[string]bool{}
	check := func(c constraint) {
		if seen[c.key] || nativeInvariants[c.key] != "" {
			return
		}
		seen[c.key] = true
		n, err := x.r.compileExpr(c.expr)
		if err != nil {
			// None does (TestEveryConstraintIsEvaluated); should a new
			// package bring one, it is reported, not skipped in silence.
			x.add(SeverityWarning, "not-supported", e, src, "Constraint %s was not evaluated: %v", c.key, err)
			return
		}
		res := e.resource()
		root := res
		if res != nil && res.parent != nil && res.fname == "contained" {
			root = res.parent.resource()
		}
		env := &fpEnv{r: x.r, pkg: d.sd.pkg, resource: res, rootRes: root, resolve: x.resolveRef, this: []fpValue{{e: e}}}
		out, err := env.eval(n, env.this)
		if err != nil {
			x.add(SeverityWarning, "not-supported", e, src, "Constraint %s could not be evaluated: %v", c.key, err)
			return
		}
		if b, ok := toBool(out); ok && !b {
			sev := SeverityError
			if c.severity == "warning" {
				sev = SeverityWarning
			}
			x.add(sev, "invariant", e, src, "Constraint failed: %s: '%s' (%s)", c.key, c.human, c.expr)
		}
	}
	for _, c := range d.constraints {
		check(c)
	}
	for _, cs := range more {
		for _, c := range cs {
			check(c)
		}
	}
}

// ---- extensions ----

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
