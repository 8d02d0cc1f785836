package profiles

import (
	"fmt"
	"slices"
	"strings"
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
	refs       map[refKey]*refOutcome // reference targets judged (targetOutcome)
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
		i := cd.pos
		if i >= len(pd.children) || pd.children[i] != cd {
			i = max(slices.Index(pd.children, cd), 0) // not expected: childIdx and choices hold pd's children
		}
		groups[i] = append(groups[i], k)
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
