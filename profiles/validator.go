package profiles

import (
	"sort"
	"strings"
	"sync"
)

// Canonical URLs of the PAS Bundle profiles.
const (
	PASRequestBundle         = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-pas-request-bundle"
	PASResponseBundle        = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-pas-response-bundle"
	PASInquiryRequestBundle  = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-pas-inquiry-request-bundle"
	PASInquiryResponseBundle = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-pas-inquiry-response-bundle"
)

// Options configure a Validator.
type Options struct {
	// PASVersion is the PAS IG version requests and responses are
	// validated against: "2.2.1" (the default) or "2.0.1".
	PASVersion string
	// CRDVersion is the CRD IG version: "2.0.1" (the default) or "2.2.0"
	// (the 2.2 preview build).
	CRDVersion string
	// Strict turns every tolerance (Tolerances) and every known IG defect
	// (KnownIGDefects) back into the error it stands for.
	Strict bool
}

// Validator validates FHIR JSON against profiles. It is safe for
// concurrent use.
type Validator struct {
	r      *Registry
	strict bool
	pasPkg int
	crdPkg int

	crdOnce         sync.Once
	crdByType       map[string][]string
	crdAppointments []string // Bundle profiles for context.appointments
}

// ForCRD returns a Validator like v for CRD IG version crdVersion
// ("2.0.1" or "2.2.0"), sharing v's registry and its compiled definitions.
func (v *Validator) ForCRD(crdVersion string) *Validator {
	return &Validator{r: v.r, strict: v.strict, pasPkg: v.pasPkg, crdPkg: v.r.pkgIndex(pkgCRD, crdVersion)}
}

// NewValidator returns a Validator over the registry's packages.
func (r *Registry) NewValidator(opts Options) *Validator {
	if opts.PASVersion == "" {
		opts.PASVersion = "2.2.1"
	}
	if opts.CRDVersion == "" {
		opts.CRDVersion = "2.0.1"
	}
	return &Validator{
		r:      r,
		strict: opts.Strict,
		pasPkg: r.pkgIndex(pkgPAS, opts.PASVersion),
		crdPkg: r.pkgIndex(pkgCRD, opts.CRDVersion),
	}
}

func (v *Validator) newRun(ctxPkg int) *run {
	return &run{
		v: v, r: v.r,
		seen:    map[Issue]bool{},
		bundles: map[*elem]*bundleIdx{},
		done:    map[doneKey]*doneVal{},
		ctxPkg:  ctxPkg,
	}
}

func fatal(code, msg string) Result {
	return Result{Issues: []Issue{{Severity: SeverityFatal, Code: code, Diagnostics: msg}}}
}

func parseResource(raw []byte) (*elem, *Result) {
	jv, err := parseJSON(raw)
	if err != nil {
		r := fatal("structure", err.Error())
		return nil, &r
	}
	root, err := buildTree(jv)
	if err != nil {
		r := fatal("structure", err.Error())
		return nil, &r
	}
	return root, nil
}

// Validate validates one resource (JSON) against its base definition, its
// meta.profile entries and the given profiles (canonical URLs, optionally
// url|version); it must conform to each of the given profiles. Unversioned
// canonicals resolve in the configured PAS package and its dependencies
// first, then to the highest embedded version.
func (v *Validator) Validate(resource []byte, profiles ...string) Result {
	root, bad := parseResource(resource)
	if bad != nil {
		return *bad
	}
	x := v.newRun(v.pasPkg)
	x.validateRoot(root, profiles)
	return Result{Issues: x.issues}
}

func (x *run) validateRoot(root *elem, profiles []string) {
	if len(profiles) == 0 {
		x.resource(root, nil, x.ctxPkg)
		return
	}
	if root.resType == "Bundle" {
		x.indexBundle(root)
	}
	for _, p := range profiles {
		sd, err := x.r.structure(p, x.ctxPkg)
		if err != nil {
			x.addAt(SeverityError, "not-supported", root.path(), "", "Profile "+p+" is not available")
			continue
		}
		x.walkRoot(root, sd)
	}
	// meta.profile entries are honoured as well.
	x.resource(root, nil, x.ctxPkg)
}

func (v *Validator) pasProfile(url string) string {
	if v.pasPkg < 0 {
		return url
	}
	return url + "|" + v.r.pkgs[v.pasPkg].Version
}

// validatePAS validates a PAS Bundle, or a Parameters resource that carries
// it (the $submit / $inquire input), against a PAS Bundle profile.
// References inside the Bundle must resolve within it.
func (v *Validator) validatePAS(raw []byte, profile string) Result {
	return v.validatePASTree(raw, Node{}, profile)
}

// validatePASTree is validatePAS of tree, raw decoded (ParseDoc), or of
// raw when tree is the zero Node.
func (v *Validator) validatePASTree(raw []byte, tree Node, profile string) Result {
	var root *elem
	if tree.Valid() {
		r, err := buildTree(tree.v)
		if err != nil {
			return fatal("structure", err.Error())
		}
		root = r
	} else {
		r, bad := parseResource(raw)
		if bad != nil {
			return *bad
		}
		root = r
	}
	x := v.newRun(v.pasPkg)
	x.strictRefs = true
	target := root
	if root.resType == "Parameters" {
		target = nil
		for _, p := range root.child("parameter") {
			if r := p.first("resource"); r != nil && r.resType == "Bundle" {
				target = r
				break
			}
		}
		if target == nil {
			return Result{Issues: []Issue{{Severity: SeverityError, Code: "required", Diagnostics: "The Parameters resource carries no Bundle", Expression: "Parameters.parameter"}}}
		}
	}
	if target.resType != "Bundle" {
		return Result{Issues: []Issue{{Severity: SeverityError, Code: "structure", Diagnostics: "Expected a Bundle, found a " + target.resType, Expression: root.path()}}}
	}
	x.validateRoot(target, []string{v.pasProfile(profile)})
	return Result{Issues: x.issues}
}

// ValidatePASRequest validates a $submit body (a PAS request Bundle, or
// Parameters wrapping one) against the PAS request Bundle profile and,
// through its entry slices, profile-claim / profile-claim-update and the
// profiles the Claim's references point to.
func (v *Validator) ValidatePASRequest(raw []byte) Result {
	return v.validatePAS(raw, PASRequestBundle)
}

// ValidatePASRequestTree is ValidatePASRequest of tree, the body already
// decoded (ParseDoc), without decoding it again; with the zero Node it
// decodes raw.
func (v *Validator) ValidatePASRequestTree(raw []byte, tree Node) Result {
	return v.validatePASTree(raw, tree, PASRequestBundle)
}

// ValidatePASInquiryTree is ValidatePASInquiry of an already decoded body
// (see ValidatePASRequestTree).
func (v *Validator) ValidatePASInquiryTree(raw []byte, tree Node) Result {
	return v.validatePASTree(raw, tree, PASInquiryRequestBundle)
}

// ValidatePASInquiry validates a $inquire body against the PAS inquiry
// request Bundle profile.
func (v *Validator) ValidatePASInquiry(raw []byte) Result {
	return v.validatePAS(raw, PASInquiryRequestBundle)
}

// ValidatePASResponse validates a $submit response Bundle against the PAS
// response Bundle profile.
func (v *Validator) ValidatePASResponse(raw []byte) Result {
	return v.validatePAS(raw, PASResponseBundle)
}

// ValidatePASInquiryResponse validates a $inquire response Bundle against
// the PAS inquiry response Bundle profile.
func (v *Validator) ValidatePASInquiryResponse(raw []byte) Result {
	return v.validatePAS(raw, PASInquiryResponseBundle)
}

// crdProfiles returns the concrete CRD profiles for a resource type; a
// resource that names none in meta.profile must conform to one of them.
func (v *Validator) crdProfiles(resType string) []string {
	if v.crdPkg < 0 {
		return nil
	}
	v.crdOnce.Do(func() {
		v.crdByType = map[string][]string{}
		for _, es := range v.r.byURL {
			for _, e := range es {
				if e.Pkg != v.crdPkg || e.Kind != "StructureDefinition" {
					continue
				}
				sd, err := v.r.structure(e.URL+"|"+e.Version, e.Pkg)
				if err != nil || sd.kind != "resource" || sd.abstract || sd.derivation != "constraint" {
					continue
				}
				if sd.typ == "Bundle" {
					// CRD 2.2's profile-bundle-appointment is for
					// context.appointments only; prefetch searchsets and
					// draftOrders are Bundles it does not describe.
					v.crdAppointments = append(v.crdAppointments, canon(sd))
					continue
				}
				v.crdByType[sd.typ] = append(v.crdByType[sd.typ], canon(sd))
			}
		}
		for _, ps := range v.crdByType {
			sort.Strings(ps)
		}
	})
	return v.crdByType[resType]
}

// ValidateCRDResource validates a resource (a draft order, a prefetch
// resource, or a Bundle of them) against the CRD profile for its type,
// plus its meta.profile entries.
func (v *Validator) ValidateCRDResource(raw []byte) Result {
	root, bad := parseResource(raw)
	if bad != nil {
		return *bad
	}
	x := v.newRun(v.crdPkg)
	x.defaults = v.crdProfiles
	x.resource(root, nil, v.crdPkg)
	return Result{Issues: x.issues}
}

// ValidateCRDHookRequest validates the FHIR parts of a CDS Hooks request
// body: every resource under "context" (e.g. draftOrders, a Bundle) and
// under "prefetch", each against the CRD profile for its type. The hook
// JSON itself is not FHIR and is not checked here. Expressions start at
// the JSON member, e.g. context.draftOrders.entry[0].resource.
func (v *Validator) ValidateCRDHookRequest(raw []byte) Result {
	jv, err := parseJSON(raw)
	if err != nil {
		return fatal("structure", err.Error())
	}
	if jv.kind != jObj {
		return fatal("structure", "a CDS Hooks request must be a JSON object")
	}
	x := v.newRun(v.crdPkg)
	x.defaults = v.crdProfiles
	// A resource that claims a profile (US Core, say) is checked against
	// that claim and still against the CRD profile for its type.
	x.defaultsAlways = true
	for _, part := range []string{"context", "prefetch"} {
		obj := jv.get(part)
		if obj == nil || obj.kind != jObj {
			continue
		}
		holder := &elem{name: part, fname: part, index: -1, kind: jObj}
		for _, f := range obj.obj {
			if f.val.kind != jObj || f.val.get("resourceType") == nil {
				continue
			}
			res := &elem{name: f.name, fname: f.name, index: -1, parent: holder}
			fillValue(res, f.val, nil)
			var anyOf []string
			if part == "context" && f.name == "appointments" {
				v.crdProfiles("") // loads crdAppointments
				anyOf = v.crdAppointments
			}
			x.resource(res, anyOf, v.crdPkg)
		}
	}
	return Result{Issues: x.issues}
}

// ---- references ----

type bundleIdx struct {
	byFull   map[string]*elem
	byTypeID map[string]*elem
}

func (x *run) indexBundle(b *elem) {
	if x.bundles[b] != nil {
		return
	}
	idx := &bundleIdx{byFull: map[string]*elem{}, byTypeID: map[string]*elem{}}
	for _, en := range b.child("entry") {
		res := en.first("resource")
		if res == nil || res.resType == "" {
			continue
		}
		if fu := en.str("fullUrl"); fu != "" {
			idx.byFull[fu] = res
		}
		if id := res.str("id"); id != "" {
			k := res.resType + "/" + id
			if _, dup := idx.byTypeID[k]; !dup {
				idx.byTypeID[k] = res
			}
		}
	}
	x.bundles[b] = idx
}

// resolveRef resolves a reference made from element from: a contained
// "#id", or an entry of the enclosing Bundle by fullUrl or Type/id.
func (x *run) resolveRef(ref string, from *elem) *elem {
	if from == nil {
		return nil
	}
	if strings.HasPrefix(ref, "#") {
		res := from.resource()
		for res != nil && res.fname == "contained" && res.parent != nil {
			res = res.parent.resource()
		}
		if res == nil {
			return nil
		}
		if ref == "#" {
			return res
		}
		for _, c := range res.child("contained") {
			if c.str("id") == ref[1:] {
				return c
			}
		}
		return nil
	}
	for p := from.parent; p != nil; p = p.parent {
		idx := x.bundles[p]
		if idx == nil {
			continue
		}
		if t := idx.byFull[ref]; t != nil {
			return t
		}
		if strings.Contains(ref, ":") {
			return nil
		}
		// Relative: against the base of the referencing entry's fullUrl.
		ref = strings.SplitN(ref, "/_history/", 2)[0]
		if res := from.resource(); res != nil && res.parent != nil {
			if fu := res.parent.str("fullUrl"); strings.HasPrefix(fu, "http") {
				parts := strings.Split(fu, "/")
				if len(parts) > 2 {
					base := strings.Join(parts[:len(parts)-2], "/")
					if t := idx.byFull[base+"/"+ref]; t != nil {
						return t
					}
				}
			}
		}
		return idx.byTypeID[ref]
	}
	return nil
}

func (x *run) inBundle(e *elem) bool {
	for p := e.parent; p != nil; p = p.parent {
		if x.bundles[p] != nil {
			return true
		}
	}
	return false
}

func (x *run) reference(e *elem, t etype, pkg int, src string) {
	ref := e.str("reference")
	if ref == "" {
		return
	}
	target := x.resolveRef(ref, e)
	if target == nil {
		switch {
		case strings.HasPrefix(ref, "#"):
			x.add(SeverityError, "not-found", e, src, "The contained resource '%s' was not found", ref)
		case strings.HasPrefix(ref, "urn:uuid:") || strings.HasPrefix(ref, "urn:oid:"):
			x.add(SeverityError, "not-found", e, src, "The reference '%s' could not be resolved in the Bundle", ref)
		case x.strictRefs && x.inBundle(e):
			// A warning: the PAS IG's own example Bundles leave some
			// relative references unresolved.
			x.add(SeverityWarning, "not-found", e, src, "The reference '%s' could not be resolved in the Bundle", ref)
		}
		return
	}
	if len(t.targets) == 0 {
		return
	}
	o := x.targetOutcome(target, t.targets, pkg)
	switch {
	case o.skip:
	case len(o.cands) == 0:
		x.add(SeverityError, "structure", e, src, "The reference '%s' points to a %s, which is not a valid target (allowed: %s)", ref, target.resType, o.types)
	case o.bestN <= 0:
		x.merge(o.best)
	default:
		x.merge(o.best)
		first := o.best[0]
		for _, i := range o.best {
			if i.Severity == SeverityError || i.Severity == SeverityFatal {
				first = i
				break
			}
		}
		x.add(SeverityError, "structure", e, src, "The resource '%s' does not conform to the target profile %s: %s at %s (%d errors)", ref, strings.Join(o.cands, " or "), first.Diagnostics, first.Expression, o.bestN)
	}
}

// refKey names the judgement of one reference target against the target
// profiles of a Reference type (targets: its targetProfile list, joined)
// resolved in package pkg.
type refKey struct {
	target  *elem
	targets string
	pkg     int
}

// refOutcome is a reference target judged against target profiles: skip
// (nothing to judge), no candidate of the target's type (types lists the
// allowed ones), or the issues of the first candidate it conforms to
// (bestN 0) or of the candidate with the fewest errors (bestN > 0; -1
// when no candidate compiled).
type refOutcome struct {
	skip  bool
	types string
	cands []string
	best  []Issue
	bestN int
}

// targetOutcome judges target against a Reference's target profiles once
// per run: a resource referenced N times (the patient from the Claim, the
// Coverage, each ServiceRequest...) is judged on the first reference and
// the outcome reused, issues merged as the first time. An outcome reached
// while one of the candidates' walks of target was still in progress (a
// reference cycle back to it, which sees no findings yet) is not kept, so
// a later reference judges the finished walk, as it did before.
func (x *run) targetOutcome(target *elem, targets []string, pkg int) *refOutcome {
	k := refKey{target: target, targets: strings.Join(targets, " "), pkg: pkg}
	if o := x.refs[k]; o != nil {
		return o
	}
	o := &refOutcome{bestN: -1}
	var types []string
	for _, tp := range targets {
		sd, err := x.r.structure(tp, pkg)
		if err != nil || sd.typ == "Resource" {
			o.skip = true // unknown target profile (cannot judge), or any resource
			break
		}
		if len(o.cands) == 0 {
			types = append(types, sd.typ) // for the message when no candidate fits
		}
		if sd.typ == target.resType && sd.derivation == "constraint" {
			o.cands = append(o.cands, tp)
		} else if sd.typ == target.resType {
			o.skip = true // the base type is allowed
			break
		}
	}
	if !o.skip && len(o.cands) == 0 {
		o.types = strings.Join(types, ", ")
	}
	keep := true
	if !o.skip {
		for _, c := range o.cands {
			sd, err := x.r.structure(c, pkg)
			if err != nil {
				continue
			}
			if d := x.done[doneKey{target, sd}]; d != nil && d.busy {
				keep = false
			}
			is := x.capture(func() { x.walkRoot(target, sd) })
			n := countErrors(is)
			if n == 0 {
				o.best, o.bestN = is, 0
				break
			}
			if o.bestN < 0 || n < o.bestN {
				o.best, o.bestN = is, n
			}
		}
	}
	if keep {
		if x.refs == nil {
			x.refs = map[refKey]*refOutcome{}
		}
		x.refs[k] = o
	}
	return o
}
