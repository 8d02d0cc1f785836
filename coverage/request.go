package coverage

import (
	"strconv"

	"github.com/priora/priora/profiles"
)

// ClaimRequest is a PAS request Bundle parsed once for criteria: the
// Claim, its patient and coverage, and its items by sequence.
type ClaimRequest struct {
	bundle, claim, patient, coverage *profiles.Node
	items                            map[int]*profiles.Node
}

var (
	claimOf    = mustExpr("entry.resource.ofType(Claim).first()")
	patientOf  = mustExpr("patient.resolve()")
	coverageOf = mustExpr("(insurance.where(focal = true) | insurance).first().coverage.resolve()")
	itemsOf    = mustExpr("item")
	sequenceOf = mustExpr("sequence")
)

// ParseClaimRequest parses a PAS request Bundle for criteria.
func ParseClaimRequest(bundle []byte) (*ClaimRequest, error) {
	root, err := profiles.ParseResource(bundle)
	if err != nil {
		return nil, err
	}
	cr := &ClaimRequest{bundle: root, items: map[int]*profiles.Node{}}
	cr.claim = first(claimOf, root)
	if cr.claim == nil {
		return cr, nil
	}
	cr.patient = first(patientOf, cr.claim)
	cr.coverage = first(coverageOf, cr.claim)
	if r, err := itemsOf.Eval(cr.claim, profiles.Env{}); err == nil {
		for _, it := range r.Nodes() {
			if s, err := sequenceOf.Eval(it, profiles.Env{}); err == nil && len(s.Values) == 1 {
				if v, ok := s.Values[0].String(); ok {
					if n, err := strconv.Atoi(v); err == nil {
						cr.items[n] = it
					}
				}
			}
		}
	}
	return cr, nil
}

func first(x *profiles.Expr, focus *profiles.Node) *profiles.Node {
	r, err := x.Eval(focus, profiles.Env{})
	if err != nil {
		return nil
	}
	if ns := r.Nodes(); len(ns) > 0 {
		return ns[0]
	}
	return nil
}

// Item returns the criteria data for the item with this sequence; member
// is the roster entry (nil when there is none) and history the member's
// earlier services.
func (cr *ClaimRequest) Item(sequence int, member *profiles.Node, history func() ([]Prior, bool, error)) *Request {
	return &Request{Bundle: cr.bundle, Claim: cr.claim, Item: cr.items[sequence], Patient: cr.patient,
		Coverage: cr.coverage, Member: member, History: history}
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
