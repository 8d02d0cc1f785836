package coverage

import (
	"strconv"

	"github.com/priora/priora/profiles"
)

// ClaimRequest is a PAS request Bundle parsed once for criteria: the
// Claim, its patient and coverage, and its items by sequence.
type ClaimRequest struct {
	bundle, claim, patient, coverage []profiles.Value
	items                            map[int][]profiles.Value
}

var (
	claimOf    = mustFHIRPath("entry.resource.ofType(Claim).first()")
	patientOf  = mustFHIRPath("patient.resolve()")
	coverageOf = mustFHIRPath("insurance.where(focal = true).coverage.resolve() | insurance.first().coverage.resolve()")
	itemsOf    = mustFHIRPath("item")
	sequenceOf = mustFHIRPath("sequence")
)

// ParseClaimRequest parses a PAS request Bundle for criteria.
func ParseClaimRequest(bundle []byte) (*ClaimRequest, error) {
	root, err := profiles.ParseResource(bundle)
	if err != nil {
		return nil, err
	}
	return ClaimRequestOf(root), nil
}

// ClaimRequestOf is ParseClaimRequest of a Bundle already decoded
// (profiles.ParseResource, or profiles.Node.Resource).
func ClaimRequestOf(root profiles.Value) *ClaimRequest {
	cr := &ClaimRequest{bundle: []profiles.Value{root}, items: map[int][]profiles.Value{}}
	cr.claim = eval(claimOf, cr.bundle)
	if len(cr.claim) == 0 {
		return cr
	}
	cr.patient = eval(patientOf, cr.claim)
	if cov := eval(coverageOf, cr.claim); len(cov) > 0 {
		cr.coverage = cov[:1]
	}
	for _, it := range eval(itemsOf, cr.claim) {
		if s := eval(sequenceOf, []profiles.Value{it}); len(s) == 1 {
			if n, err := strconv.Atoi(s[0].String()); err == nil {
				cr.items[n] = []profiles.Value{it}
			}
		}
	}
	return cr
}

func eval(x *profiles.FHIRPath, focus []profiles.Value) []profiles.Value {
	out, err := x.Evaluate(focus, nil)
	if err != nil {
		return nil
	}
	return out
}

// Item returns the criteria data for the item with this sequence; member
// is the roster entry (empty when there is none) and history the member's
// earlier services.
func (cr *ClaimRequest) Item(sequence int, member []profiles.Value, history func() ([]Prior, bool, error)) *Request {
	return &Request{Bundle: cr.bundle, Claim: cr.claim, Item: cr.items[sequence], Patient: cr.patient,
		Coverage: cr.coverage, Member: member, History: history}
}

// UsesVariable reports whether any rule's criteria read %name (callers
// skip building what no criterion reads).
func (r *Rules) UsesVariable(name string) bool {
	r.varsOnce.Do(func() {
		r.vars = map[string]bool{}
		for _, rule := range r.rules {
			rule.Criteria.variables(r.vars)
		}
	})
	return r.vars[name]
}

// variables adds to vars the variables the criterion, and those inside it,
// read.
func (c *Criterion) variables(vars map[string]bool) {
	if c == nil {
		return
	}
	for _, x := range []*profiles.FHIRPath{c.expr, c.data} {
		if x != nil {
			for _, v := range x.Variables() {
				vars[v] = true
			}
		}
	}
	for _, k := range append(append([]*Criterion{c.Not}, c.All...), c.Any...) {
		k.variables(vars)
	}
}

// HasCriteria reports whether any rule has criteria (callers skip parsing
// requests when none has).
func (r *Rules) HasCriteria() bool {
	for _, rule := range r.rules {
		if rule.Criteria != nil {
			return true
		}
	}
	return false
}
