package pas

import (
	"encoding/json"
	"fmt"
	"github.com/priora/priora/coverage"
	"strings"

	"github.com/priora/priora/fhir"
)

// request is a PAS request Bundle that passed intake checks, with the
// resources business logic needs already resolved.
type request struct {
	raw    []byte
	src    source // raw and its decoded tree, which intake reads
	bundle *fhir.Bundle
	claim  *fhir.Claim
	// rawItems are the Claim's items as sent, kept byte for byte.
	rawItems []json.RawMessage
	// claimEntry is the Claim's index in the Bundle (always 0 after intake).
	claimEntry int
	// prior is the Claim an update replaces (nil for a new request).
	prior         *fhir.Claim
	priorFullURL  string
	coverage      *fhir.Coverage
	coverageEntry int
	patientEntry  int
	insurerEntry  int
	providerEntry int
	// unresolved counts tolerated references below the Claim that point
	// outside the Bundle.
	unresolved int
	// refs and parties are entries decoded once and kept: the references
	// of each entry (by index; checkReferences), the parties read.
	refs    map[int][]fhir.Ref
	parties map[int]*fhir.Party
	// criteria is the request parsed for coverage criteria and history
	// the member's earlier services (prepareCriteria); nil without
	// criteria in the rules.
	criteria *coverage.ClaimRequest
	history  func() ([]coverage.Prior, bool, error)
}

func (r *request) claimFullURL() string { return r.bundle.Entry[r.claimEntry].FullURL }

// isUpdate reports whether the Claim replaces an earlier one (PAS Claim Update).
func (r *request) isUpdate() bool { return len(r.claim.Related) > 0 && r.claim.Related[0].Claim != nil }

// unwrapParameters returns the Bundle inside a Parameters body with a
// "resource" part, or the body itself when it is a Bundle (in, the body
// and its tree; out, the Bundle's).
func unwrapParameters(in source, want string) (source, error) {
	body := in.raw
	rt, err := resourceType(in)
	if err != nil {
		return source{}, err
	}
	switch rt {
	case "Bundle":
		return in, nil
	case "Parameters":
		var p struct {
			Parameter []struct {
				Name     string          `json:"name"`
				Resource json.RawMessage `json:"resource"`
			} `json:"parameter"`
		}
		if err := in.decode(body, &p); err != nil {
			return source{}, fhir.InvalidAt("structure", "Parameters", "the Parameters body is malformed")
		}
		for i, part := range p.Parameter {
			if part.Name == "resource" {
				if len(part.Resource) == 0 {
					return source{}, fhir.InvalidAt("required", fmt.Sprintf("Parameters.parameter[%d].resource", i), "the resource parameter holds no resource")
				}
				return in.part(part.Resource), nil
			}
		}
		return source{}, fhir.InvalidAt("required", "Parameters.parameter", "Parameters must have a parameter named resource holding the %s", want)
	}
	return source{}, fhir.InvalidAt("structure", rt, "expected a %s (or Parameters with a resource part), got %s", want, rt)
}

// resourceType is fhir.ResourceType(in.raw), read from the tree when
// there is one (any problem is reported by fhir.ResourceType, as before).
func resourceType(in source) (string, error) {
	if in.tree.IsObject() {
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		if in.tree.Decode(&head) == nil && head.ResourceType != "" {
			return head.ResourceType, nil
		}
	}
	return fhir.ResourceType(in.raw)
}

// issues collects intake findings.
type issues []fhir.Issue

func (is *issues) add(code, expr, format string, args ...any) {
	*is = append(*is, fhir.Issue{Severity: "error", Code: code, Expression: expr, Diagnostics: fmt.Sprintf(format, args...)})
}

func (is issues) err(msg string) error {
	if len(is) == 0 {
		return nil
	}
	return &fhir.Error{Kind: fhir.Invalid, Message: msg, Issues: is}
}

// checkBundleEnvelope applies the Bundle-level rules shared by request and
// inquiry Bundles: type collection, identifier, timestamp, at least one
// entry, absolute or urn:uuid fullUrls, each resource once, no
// request/response/search. It returns the decoded Bundle.
func checkBundleEnvelope(src source, kind string) (*fhir.Bundle, issues, error) {
	b, err := fhir.DecodeBundleWith(src.raw, src.decode)
	if err != nil {
		return nil, nil, err
	}
	var is issues
	if b.Type != "collection" {
		is.add("value", "Bundle.type", "a %s Bundle must have type collection, not %q", kind, b.Type)
	}
	if b.Identifier == nil || b.Identifier.Value == "" {
		is.add("required", "Bundle.identifier", "a %s Bundle must carry the submitter's transaction identifier in Bundle.identifier", kind)
	}
	if b.Timestamp == "" {
		is.add("required", "Bundle.timestamp", "a %s Bundle must have a timestamp", kind)
	}
	if len(b.Entry) == 0 {
		is.add("required", "Bundle.entry", "the Bundle has no entries; the first entry must be a Claim")
		return b, is, nil
	}
	seenURL := map[string]int{}
	seenID := map[string]int{}
	for i, e := range b.Entry {
		at := fmt.Sprintf("Bundle.entry[%d]", i)
		if len(e.Resource) == 0 {
			is.add("required", at+".resource", "every entry must hold a resource")
			continue
		}
		if msg := fhir.CheckFullURL(e.FullURL, e.Type, e.ID); msg != "" {
			is.add("value", at+".fullUrl", "%s", msg)
		}
		if j, dup := seenURL[e.FullURL]; dup && e.FullURL != "" {
			is.add("duplicate", at+".fullUrl", "fullUrl %q already used by entry %d; each resource appears once", e.FullURL, j)
		}
		seenURL[e.FullURL] = i
		if e.ID != "" {
			k := e.Type + "/" + e.ID
			if j, dup := seenID[k]; dup {
				is.add("duplicate", at+".resource", "%s already appears as entry %d; each resource appears once", k, j)
			}
			seenID[k] = i
		}
		if e.Request != nil || e.Response != nil || len(e.Search) > 0 {
			is.add("structure", at, "entries of a collection Bundle carry no request, response or search")
		}
	}
	return b, is, nil
}

// parseRequest applies PAS request intake (spec-11..25): everything that
// must hold before a single item is decided.
func parseRequest(src source) (*request, error) {
	raw := src.raw
	b, is, err := checkBundleEnvelope(src, "PAS request")
	if err != nil {
		return nil, err
	}
	if len(b.Entry) == 0 {
		return nil, is.err("the PAS request Bundle is not processable")
	}
	r := &request{raw: raw, src: src, bundle: b, patientEntry: -1, insurerEntry: -1, providerEntry: -1, coverageEntry: -1}
	if b.Entry[0].Type != "Claim" {
		is.add("structure", "Bundle.entry[0].resource", "the first entry must be a PAS Claim, not %s", orNone(b.Entry[0].Type))
		return nil, is.err("the PAS request Bundle is not processable")
	}
	var c fhir.Claim
	if err := src.decode(b.Entry[0].Resource, &c); err != nil {
		is.add("structure", "Bundle.entry[0].resource", "the Claim is malformed")
		return nil, is.err("the PAS request Bundle is not processable")
	}
	r.claim = &c
	var items struct {
		Item []json.RawMessage `json:"item"`
	}
	_ = src.decode(b.Entry[0].Resource, &items) // cannot fail: the Claim decoded above
	r.rawItems = items.Item
	at := "Bundle.entry[0].resource"
	if c.Use != "preauthorization" {
		is.add("value", at+".use", "Claim.use must be preauthorization, not %q", c.Use)
	}
	if len(c.Identifier) == 0 {
		is.add("required", at+".identifier", "the Claim must carry the provider's trace identifier")
	}
	if len(c.Item) == 0 {
		is.add("required", at+".item", "the Claim must request at least one item")
	}
	checkModifiers(&is, at, c.ModifierExtension)
	seq := map[int]bool{}
	for i, it := range c.Item {
		if seq[it.Sequence] {
			is.add("duplicate", fmt.Sprintf("%s.item[%d].sequence", at, i), "item sequence %d is used twice", it.Sequence)
		}
		seq[it.Sequence] = true
		checkModifiers(&is, fmt.Sprintf("%s.item[%d]", at, i), it.ModifierExtension)
		if it.ProductOrService == nil || len(it.ProductOrService.Coding) == 0 {
			is.add("required", fmt.Sprintf("%s.item[%d].productOrService", at, i), "the item must name the requested service with a code")
		}
	}
	info := map[int]bool{}
	for i, si := range c.SupportingInfo {
		if info[si.Sequence] {
			is.add("duplicate", fmt.Sprintf("%s.supportingInfo[%d].sequence", at, i), "supportingInfo sequence %d is used twice (spec-22)", si.Sequence)
		}
		info[si.Sequence] = true
		checkModifiers(&is, fmt.Sprintf("%s.supportingInfo[%d]", at, i), si.ModifierExtension)
	}
	r.checkReferences(&is)
	if err := is.err("the PAS request Bundle is not processable"); err != nil {
		return nil, err
	}
	r.resolveParties()
	if r.isUpdate() {
		ref := c.Related[0].Claim.Reference
		j := b.Resolve(ref, b.Entry[0].FullURL)
		if j < 0 || b.Entry[j].Type != "Claim" {
			is.add("not-found", at+".related[0].claim", "the Claim being updated (%s) must be included in the Bundle (spec-65)", ref)
			return nil, is.err("the PAS Claim Update is not processable")
		}
		var p fhir.Claim
		if err := src.decode(b.Entry[j].Resource, &p); err == nil {
			r.prior, r.priorFullURL = &p, b.Entry[j].FullURL
		}
	}
	return r, nil
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

func checkModifiers(is *issues, at string, mods []fhir.Extension) {
	for i, m := range mods {
		if !modifierExtensions[m.URL] {
			is.add("not-supported", fmt.Sprintf("%s.modifierExtension[%d]", at, i),
				"modifier extension %s is not understood; it changes the meaning of the request, so the request cannot be processed", m.URL)
		}
	}
}

// checkReferences walks every reference from the Claim, transitively
// (spec-13, spec-18). A reference the Claim itself makes must resolve inside
// the Bundle, or the request is rejected. Deeper references are followed
// where they resolve and tolerated where they do not: the IG's own examples
// omit such resources (Bundle-SurgicalRequestBundleExample's
// PractitionerRole points at a Location and a Practitioner it does not
// carry), and nothing Priora decides depends on them. The Claim an update
// replaces may point at its own prior Claim, which is not included
// (spec-66); that reference is skipped.
func (r *request) checkReferences(is *issues) {
	b := r.bundle
	visited := map[int]bool{0: true}
	queue := []int{0}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		e := b.Entry[i]
		refs, err := r.references(i)
		if err != nil {
			is.add("structure", fmt.Sprintf("Bundle.entry[%d].resource", i), "the resource is malformed")
			continue
		}
		for _, ref := range refs {
			if i != 0 && e.Type == "Claim" && strings.HasPrefix(ref.Path, ".related[") {
				continue
			}
			if strings.HasPrefix(ref.Value, "#") {
				continue
			}
			j := b.Resolve(ref.Value, e.FullURL)
			if j < 0 && i != 0 {
				r.unresolved++
				continue
			}
			if j < 0 {
				is.add("not-found", fmt.Sprintf("Bundle.entry[%d].resource%s", i, ref.Path),
					"reference %q does not resolve to a resource in the Bundle; every resource the Claim refers to, directly or indirectly, must be included (spec-13)", ref.Value)
				continue
			}
			if !visited[j] {
				visited[j] = true
				queue = append(queue, j)
			}
		}
	}
}

// references are the references in entry i's resource, ordered by path,
// decoded once per request.
func (r *request) references(i int) ([]fhir.Ref, error) {
	if refs, ok := r.refs[i]; ok {
		return refs, nil
	}
	refs, err := r.src.references(r.bundle.Entry[i].Resource)
	if err != nil {
		return nil, err
	}
	sortRefs(refs)
	if r.refs == nil {
		r.refs = map[int][]fhir.Ref{}
	}
	r.refs[i] = refs
	return refs, nil
}

// resolveParties finds the Coverage, patient, insurer and requesting
// provider entries.
func (r *request) resolveParties() {
	b, c := r.bundle, r.claim
	from := b.Entry[0].FullURL
	resolve := func(ref *fhir.Reference) int {
		if ref == nil {
			return -1
		}
		return b.Resolve(ref.Reference, from)
	}
	r.patientEntry = resolve(c.Patient)
	r.insurerEntry = resolve(c.Insurer)
	r.providerEntry = resolve(c.Provider)
	for _, ins := range c.Insurance {
		if j := resolve(ins.Coverage); j >= 0 {
			var cov fhir.Coverage
			if r.src.decode(b.Entry[j].Resource, &cov) == nil {
				r.coverage, r.coverageEntry = &cov, j
				if ins.Focal {
					break
				}
			}
		}
	}
}

// party decodes the identifiers and name of the entry at i.
func (r *request) party(i int) *fhir.Party {
	if i < 0 || i >= len(r.bundle.Entry) {
		return nil
	}
	if p, ok := r.parties[i]; ok {
		return p
	}
	p := &fhir.Party{}
	if r.src.decode(r.bundle.Entry[i].Resource, p) != nil {
		p = nil
	}
	if r.parties == nil {
		r.parties = map[int]*fhir.Party{}
	}
	r.parties[i] = p
	return p
}
