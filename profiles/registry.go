package profiles

import (
	"bytes"
	"compress/flate"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

//go:generate go run ./internal/pkggen -o packages ../../shared/igs/davinci-crd-2.0.1.tgz ../../shared/igs/davinci-hrex-1.0.0.tgz ../../shared/igs/davinci_crd_2.2.0-preview.tgz ../../shared/igs/davinci_pas_2.0.1.tgz ../../shared/igs/davinci_pas_2.2.1.tgz ../../shared/igs/hl7.fhir.r4.core-4.0.1.tgz ../../shared/igs/hl7.fhir.uv.extensions.r4-5.2.0.tgz ../../shared/igs/hl7.terminology.r4-7.0.1.tgz ../../shared/igs/us_core_311.tgz ../../shared/igs/us_core_610.tgz ../../shared/igs/us_core_700.tgz

//go:embed packages/index.json
var indexJSON []byte

//go:embed packages/defs.bin
var defsBin []byte

// Package names of the IGs Priora validates against.
const (
	pkgCore = "hl7.fhir.r4.core"
	pkgPAS  = "hl7.fhir.us.davinci-pas"
	pkgCRD  = "hl7.fhir.us.davinci-crd"
)

const fhirSD = "http://hl7.org/fhir/StructureDefinition/"

// Registry holds the embedded conformance resources (StructureDefinitions,
// ValueSets, CodeSystems) indexed by canonical URL and version. Definitions
// are inflated and compiled on first use and cached. A Registry is safe
// for concurrent use; load it once and share it.
type Registry struct {
	pkgs  []pkgInfo
	byURL map[string][]*resEntry

	sdMu  sync.Mutex
	sds   map[*resEntry]*sdOnce
	vsMu  sync.Mutex
	vss   map[string]*vsOnce
	exprs sync.Map // expression text → *compiledExpr

	// found remembers structure's and typeSD's answers for definitions
	// that exist (byURL does not change after Load), at most maxFound of
	// them: canonicals and type codes also come from instances.
	found  sync.Map // structKey → *sdef
	nfound atomic.Int64
}

// structKey is a structure or typeSD question: a canonical and the
// package it is asked from (typeSD: the type code, from -2).
type structKey struct {
	canonical string
	from      int
}

const maxFound = 4096

func (r *Registry) remember(k structKey, sd *sdef) {
	if r.nfound.Load() < maxFound {
		if _, dup := r.found.LoadOrStore(k, sd); !dup {
			r.nfound.Add(1)
		}
	}
}

type pkgInfo struct {
	Name    string            `json:"name"`
	Version string            `json:"version"`
	Deps    map[string]string `json:"deps"`
	File    string            `json:"file"`
}

type resEntry struct {
	Kind    string `json:"k"`
	URL     string `json:"u"`
	Version string `json:"v"`
	Type    string `json:"t"`
	Pkg     int    `json:"p"`
	Off     int64  `json:"o"`
	Len     int    `json:"n"`
}

type sdOnce struct {
	once sync.Once
	sd   *sdef
	err  error
}

// Package describes one embedded FHIR package.
type Package struct {
	Name, Version string
	Resources     int // StructureDefinitions, ValueSets and CodeSystems kept
}

// Load indexes the embedded packages. It inflates nothing: definitions are
// decoded on first use. It takes a few milliseconds.
func Load() (*Registry, error) {
	var idx struct {
		Packages  []pkgInfo   `json:"packages"`
		Resources []*resEntry `json:"resources"`
	}
	if err := json.Unmarshal(indexJSON, &idx); err != nil {
		return nil, fmt.Errorf("profiles: reading the package index: %w", err)
	}
	r := &Registry{
		pkgs:  idx.Packages,
		byURL: make(map[string][]*resEntry, len(idx.Resources)),
		sds:   map[*resEntry]*sdOnce{},
		vss:   map[string]*vsOnce{},
	}
	for _, e := range idx.Resources {
		if e.Off < 0 || e.Off+int64(e.Len) > int64(len(defsBin)) || e.Pkg < 0 || e.Pkg >= len(idx.Packages) {
			return nil, fmt.Errorf("profiles: package index entry %s out of range", e.URL)
		}
		r.byURL[e.URL] = append(r.byURL[e.URL], e)
	}
	return r, nil
}

// Packages lists the embedded packages.
func (r *Registry) Packages() []Package {
	counts := make([]int, len(r.pkgs))
	for _, es := range r.byURL {
		for _, e := range es {
			counts[e.Pkg]++
		}
	}
	out := make([]Package, len(r.pkgs))
	for i, p := range r.pkgs {
		out[i] = Package{Name: p.Name, Version: p.Version, Resources: counts[i]}
	}
	return out
}

// pkgIndex finds a package by name and version ("" = the highest version).
func (r *Registry) pkgIndex(name, version string) int {
	best := -1
	for i, p := range r.pkgs {
		if p.Name != name {
			continue
		}
		if version != "" && p.Version == version {
			return i
		}
		if best < 0 || versionLess(r.pkgs[best].Version, p.Version) {
			best = i
		}
	}
	if version != "" {
		// No exact version: same major.minor, else nothing.
		for i, p := range r.pkgs {
			if p.Name == name && majorMinor(p.Version) == majorMinor(version) {
				return i
			}
		}
		return -1
	}
	return best
}

func majorMinor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) >= 2 {
		return parts[0] + "." + parts[1]
	}
	return v
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, ea := strconv.Atoi(strings.SplitN(pa[i], "-", 2)[0])
		nb, eb := strconv.Atoi(strings.SplitN(pb[i], "-", 2)[0])
		if ea == nil && eb == nil && na != nb {
			return na < nb
		}
		if pa[i] != pb[i] {
			return pa[i] < pb[i]
		}
	}
	return len(pa) < len(pb)
}

// depName maps a dependency alias such as hl7.fhir.us.core.v311 to its
// package name.
func depName(n string) string {
	if i := strings.LastIndex(n, ".v"); i > 0 {
		if _, err := strconv.Atoi(n[i+2:]); err == nil {
			return n[:i]
		}
	}
	return n
}

// lookup resolves a canonical (optionally url|version) of the given kind.
// from is the package the reference comes from (-1 if none): an
// unversioned canonical resolves first in that package, then in its
// declared dependencies, then to the highest version present.
func (r *Registry) lookup(kind, canonical string, from int) *resEntry {
	url, ver, _ := strings.Cut(canonical, "|")
	cands := r.byURL[url]
	var best *resEntry
	n := 0
	for _, e := range cands {
		if e.Kind == kind {
			n++
			best = e
		}
	}
	if n <= 1 {
		return best
	}
	if ver != "" {
		for _, e := range cands {
			if e.Kind == kind && e.Version == ver {
				return e
			}
		}
		for _, e := range cands {
			if e.Kind == kind && majorMinor(e.Version) == majorMinor(ver) {
				return e
			}
		}
	}
	if from >= 0 {
		for _, e := range cands {
			if e.Kind == kind && e.Pkg == from {
				return e
			}
		}
		for _, pi := range r.depOrder(from) {
			for _, e := range cands {
				if e.Kind == kind && e.Pkg == pi {
					return e
				}
			}
		}
	}
	best = nil
	for _, e := range cands {
		if e.Kind != kind {
			continue
		}
		if best == nil || versionLess(best.Version, e.Version) {
			best = e
		}
	}
	return best
}

// depOrder lists the packages a package depends on, in a fixed order: by
// dependency name, so that the primary alias (hl7.fhir.us.core, the
// version an IG builds on) comes before the versioned aliases
// (hl7.fhir.us.core.v311, .v610) — never by Go map order.
func (r *Registry) depOrder(from int) []int {
	names := make([]string, 0, len(r.pkgs[from].Deps))
	for dep := range r.pkgs[from].Deps {
		names = append(names, dep)
	}
	sort.Strings(names)
	out := make([]int, 0, len(names))
	for _, dep := range names {
		if pi := r.pkgIndex(depName(dep), r.pkgs[from].Deps[dep]); pi >= 0 {
			out = append(out, pi)
		}
	}
	return out
}

// versions lists the versions an unversioned canonical may mean from
// package from, in the fixed order such a claim is tried: the one lookup
// resolves first; then, unless from defines the canonical itself, the
// versions of from's dependencies in depOrder (PAS 2.2.1 reaches US Core
// 7.0.0, 3.1.1 and 6.1.0). A versioned canonical, or one from no package,
// gives what lookup gives.
func (r *Registry) versions(kind, canonical string, from int) []*resEntry {
	first := r.lookup(kind, canonical, from)
	if first == nil {
		return nil
	}
	out := []*resEntry{first}
	if strings.Contains(canonical, "|") || from < 0 || first.Pkg == from {
		return out
	}
	for _, pi := range r.depOrder(from) {
		for _, e := range r.byURL[canonical] {
			if e.Kind == kind && e.Pkg == pi && e != first {
				out = append(out, e)
			}
		}
	}
	return out
}

// raw inflates one resource.
func (r *Registry) raw(e *resEntry) ([]byte, error) {
	zr := flate.NewReader(bytes.NewReader(defsBin[e.Off : e.Off+int64(e.Len)]))
	defer zr.Close()
	return io.ReadAll(zr)
}

// structure returns the compiled StructureDefinition for a canonical.
func (r *Registry) structure(canonical string, from int) (*sdef, error) {
	k := structKey{canonical, from}
	if sd, ok := r.found.Load(k); ok {
		return sd.(*sdef), nil
	}
	e := r.lookup("StructureDefinition", canonical, from)
	if e == nil {
		return nil, fmt.Errorf("unknown profile %s", canonical)
	}
	sd, err := r.compiled(e)
	if err == nil {
		r.remember(k, sd)
	}
	return sd, err
}

// structureVersions returns the compiled versions of a StructureDefinition
// in the order of versions.
func (r *Registry) structureVersions(canonical string, from int) ([]*sdef, error) {
	es := r.versions("StructureDefinition", canonical, from)
	if len(es) == 0 {
		return nil, fmt.Errorf("unknown profile %s", canonical)
	}
	var out []*sdef
	for _, e := range es {
		sd, err := r.compiled(e)
		if err != nil {
			return nil, err
		}
		out = append(out, sd)
	}
	return out, nil
}

// compiled returns the compiled StructureDefinition of an index entry.
func (r *Registry) compiled(e *resEntry) (*sdef, error) {
	r.sdMu.Lock()
	o := r.sds[e]
	if o == nil {
		o = &sdOnce{}
		r.sds[e] = o
	}
	r.sdMu.Unlock()
	o.once.Do(func() {
		data, err := r.raw(e)
		if err != nil {
			o.err = err
			return
		}
		o.sd, o.err = compileSD(data, e.Pkg)
	})
	return o.sd, o.err
}

// typeSD returns the base definition of a FHIR type or resource.
func (r *Registry) typeSD(code string) *sdef {
	k := structKey{code, -2}
	if sd, ok := r.found.Load(k); ok {
		return sd.(*sdef)
	}
	canonical := code
	if !strings.Contains(code, "/") {
		canonical = fhirSD + code
	}
	sd, _ := r.structure(canonical, r.pkgIndex(pkgCore, ""))
	if sd != nil {
		r.remember(k, sd)
	}
	return sd
}

// HasProfile reports whether a StructureDefinition with this canonical
// (url or url|version) is embedded.
func (r *Registry) HasProfile(canonical string) bool {
	return r.lookup("StructureDefinition", canonical, -1) != nil
}
