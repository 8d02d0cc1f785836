package profiles

import (
	"strings"
	"sync"
)

// Local terminology: value sets are expanded from the embedded packages
// only. Code systems that are licensed or simply not published (X12, CPT,
// NUBC, CMS, ICD, NDC, LOINC, SNOMED, RxNorm, ...) cannot be checked here;
// codes from them are accepted on their system alone and reported as
// information.

// externalSystems are code systems whose codes are never in a package.
var externalSystems = []string{
	"https://codesystem.x12.org/",
	"https://valueset.x12.org/",
	"https://x12.org/",
	"https://www.nubc.org/",
	"http://www.nubc.org/",
	"http://www.ama-assn.org/go/cpt",
	"http://www.cms.gov/Medicare/Coding/",
	"https://www.cms.gov/Medicare/Coding/",
	"http://hl7.org/fhir/sid/icd-",
	"http://terminology.hl7.org/CodeSystem/icd9cm",
	"http://hl7.org/fhir/sid/ndc",
	"http://hl7.org/fhir/sid/cvx",
	"http://loinc.org",
	"http://snomed.info/sct",
	"http://www.nlm.nih.gov/research/umls/rxnorm",
	"http://unitsofmeasure.org",
	"urn:ietf:bcp:47",
	"urn:ietf:bcp:13",
	"urn:iso:std:iso:3166",
	"urn:iso:std:iso:4217",
	"http://nucc.org/provider-taxonomy",
	"https://nucc.org/provider-taxonomy",
	"http://www.ada.org/cdt",
	"urn:oid:",
	"http://hl7.org/fhir/sid/us-npi",
	"https://www.usps.com/",
	"http://va.gov/terminology/medrt",
	"http://fdasis.nlm.nih.gov",
	"http://ncimeta.nci.nih.gov",
	"http://www.whocc.no/atc",
	"urn:ietf:rfc:3986",
	"http://hl7.org/fhir/sid/ex-icd-10-procedures",
	"https://www.humanservices.gov.au",
}

func isExternalSystem(system string) bool {
	for _, p := range externalSystems {
		if strings.HasPrefix(system, p) {
			return true
		}
	}
	return false
}

// vsIndex is a local expansion of a value set.
type vsIndex struct {
	url      string
	found    bool
	codes    map[string]map[string]bool // system → codes; nil map = whole system
	systems  map[string]bool            // systems the value set draws on
	external []string                   // external systems included (codes not checkable)
	partial  bool                       // some part could not be expanded locally
}

type vsOnce struct {
	once sync.Once
	idx  *vsIndex
}

type membership int

const (
	memberNo membership = iota
	memberYes
	memberUnknown // system cannot be checked locally
)

func (r *Registry) valueSet(canonical string, from int) *vsIndex {
	key := canonical
	r.vsMu.Lock()
	o := r.vss[key]
	if o == nil {
		o = &vsOnce{}
		r.vss[key] = o
	}
	r.vsMu.Unlock()
	o.once.Do(func() {
		o.idx = r.expand(canonical, from, 0)
	})
	return o.idx
}

func (r *Registry) expand(canonical string, from, depth int) *vsIndex {
	url, _, _ := strings.Cut(canonical, "|")
	idx := &vsIndex{url: url, codes: map[string]map[string]bool{}, systems: map[string]bool{}}
	e := r.lookup("ValueSet", canonical, from)
	if e == nil || depth > 8 {
		return idx
	}
	data, err := r.raw(e)
	if err != nil {
		return idx
	}
	v, err := parseJSON(data)
	if err != nil {
		return idx
	}
	idx.found = true
	compose := v.get("compose")
	if compose == nil {
		// Expansion only.
		var walk func(c *jval)
		walk = func(c *jval) {
			for _, x := range c.get("contains").arrOrNil() {
				if s, code := x.get("system").str(), x.get("code").str(); s != "" && code != "" {
					idx.add(s, code)
				}
				walk(x)
			}
		}
		walk(v.get("expansion"))
		return idx
	}
	for _, inc := range compose.get("include").arrOrNil() {
		r.include(idx, inc, e.Pkg, depth)
	}
	for _, exc := range compose.get("exclude").arrOrNil() {
		sys := exc.get("system").str()
		for _, c := range exc.get("concept").arrOrNil() {
			if m := idx.codes[sys]; m != nil {
				delete(m, c.get("code").str())
			}
		}
	}
	return idx
}

func (idx *vsIndex) add(system, code string) {
	idx.systems[system] = true
	m, ok := idx.codes[system]
	if ok && m == nil {
		return // whole system already
	}
	if m == nil {
		m = map[string]bool{}
		idx.codes[system] = m
	}
	m[code] = true
}

func (idx *vsIndex) addSystem(system string) {
	idx.systems[system] = true
	idx.codes[system] = nil
}

func (r *Registry) include(idx *vsIndex, inc *jval, from, depth int) {
	sys := inc.get("system").str()
	concepts := inc.get("concept").arrOrNil()
	filters := inc.get("filter").arrOrNil()
	for _, vs := range jstrs(inc.get("valueSet")) {
		sub := r.expand(vs, from, depth+1)
		if !sub.found {
			idx.partial = true
			if isExternalSystem(vs) {
				idx.external = append(idx.external, vs)
			}
		}
		for s, m := range sub.codes {
			if m == nil {
				idx.addSystem(s)
				continue
			}
			for c := range m {
				idx.add(s, c)
			}
		}
		idx.external = append(idx.external, sub.external...)
		idx.partial = idx.partial || sub.partial
	}
	if sys == "" {
		return
	}
	if len(concepts) > 0 {
		for _, c := range concepts {
			idx.add(sys, c.get("code").str())
		}
		return
	}
	cs := r.codeSystem(sys, from)
	if cs == nil || cs.content != "complete" {
		idx.addSystem(sys)
		if isExternalSystem(sys) || cs == nil || cs.content != "complete" {
			idx.external = append(idx.external, sys)
		}
		return
	}
	if len(filters) == 0 {
		for code := range cs.parent {
			idx.add(sys, code)
		}
		return
	}
	for code := range cs.parent {
		ok := true
		for _, f := range filters {
			prop, op, val := f.get("property").str(), f.get("op").str(), f.get("value").str()
			if prop != "concept" && prop != "code" {
				ok = false
				idx.partial = true
				break
			}
			switch op {
			case "is-a":
				ok = ok && cs.isA(code, val)
			case "descendent-of":
				ok = ok && code != val && cs.isA(code, val)
			case "=":
				ok = ok && code == val
			case "in":
				ok = ok && strings.Contains(","+val+",", ","+code+",")
			case "is-not-a":
				ok = ok && !cs.isA(code, val)
			default:
				ok = false
				idx.partial = true
			}
		}
		if ok {
			idx.add(sys, code)
		}
	}
}

// csIndex is a code system's concepts with their parents.
type csIndex struct {
	content string
	parent  map[string]string // code → parent code ("" at top)
}

func (c *csIndex) isA(code, ancestor string) bool {
	for i := 0; i < 64; i++ {
		if code == ancestor {
			return true
		}
		p, ok := c.parent[code]
		if !ok || p == "" {
			return false
		}
		code = p
	}
	return false
}

func (r *Registry) codeSystem(canonical string, from int) *csIndex {
	e := r.lookup("CodeSystem", canonical, from)
	if e == nil {
		return nil
	}
	data, err := r.raw(e)
	if err != nil {
		return nil
	}
	v, err := parseJSON(data)
	if err != nil {
		return nil
	}
	cs := &csIndex{content: v.get("content").str(), parent: map[string]string{}}
	var walk func(x *jval, parent string)
	walk = func(x *jval, parent string) {
		for _, c := range x.get("concept").arrOrNil() {
			code := c.get("code").str()
			cs.parent[code] = parent
			walk(c, code)
		}
	}
	walk(v, "")
	return cs
}

// contains reports whether system|code is in the value set. A code from
// a system that cannot be checked here (licensed, external or unknown)
// is memberUnknown when the value set itself draws on such systems.
func (r *Registry) contains(idx *vsIndex, system, code string, from int) membership {
	m := idx.contains(system, code)
	if m != memberNo || system == "" || (len(idx.external) == 0 && !idx.partial) {
		return m
	}
	if !idx.partial && !idx.systems[system] {
		// The value set was expanded whole and draws on other systems
		// only: whether those can be checked or not, a code from this
		// one is not in it.
		return memberNo
	}
	if cs := r.codeSystem(system, from); cs != nil && cs.content == "complete" {
		return memberNo
	}
	return memberUnknown
}

func (idx *vsIndex) contains(system, code string) membership {
	if system == "" {
		// code type: look in every system.
		for s, m := range idx.codes {
			if m == nil {
				if isExternalSystem(s) {
					return memberUnknown
				}
				continue
			}
			if m[code] {
				return memberYes
			}
		}
		if idx.partial {
			return memberUnknown
		}
		return memberNo
	}
	m, ok := idx.codes[system]
	if !ok {
		if idx.partial {
			return memberUnknown
		}
		return memberNo
	}
	if m == nil {
		return memberUnknown
	}
	if m[code] {
		return memberYes
	}
	return memberNo
}

// x12Mismatch explains why a code from system cannot be in the X12 value
// set vs, or returns "". X12 value sets are not published, but their URLs
// end in the data element they draw on
// (https://valueset.x12.org/x217/005010/request/2000E/UM/1/06/00/1338 is
// element 1338); a code from another element's X12 code system
// (https://codesystem.x12.org/005010/N or .../external/N) is not in it.
func x12Mismatch(vs, system string) string {
	const vsPrefix, csPrefix = "https://valueset.x12.org/", "https://codesystem.x12.org/"
	if !strings.HasPrefix(vs, vsPrefix) || !strings.HasPrefix(system, csPrefix) {
		return ""
	}
	want := vs[strings.LastIndexByte(vs, '/')+1:]
	got := system[strings.LastIndexByte(system, '/')+1:]
	if want == "" || got == "" || want == got || !allDigits(want) || !allDigits(got) {
		return ""
	}
	return "the value set holds codes of X12 data element " + want + ", the code system is element " + got
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
