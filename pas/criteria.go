package pas

import (
	"context"
	"slices"
	"sync"

	"github.com/priora/priora/coverage"
	"github.com/priora/priora/store"
)

// prepareCriteria readies a request for the rules' criteria: the Bundle
// parsed once for FHIRPath, and the member's earlier authorizations,
// loaded on first use (only a frequency limit needs them). authID is the
// chain being decided, whose own items are not counted.
func (s *Service) prepareCriteria(ctx context.Context, req *request, rules *coverage.Rules, authID string) {
	if !rules.HasCriteria() {
		return
	}
	cr, err := req.claimRequest()
	if err != nil {
		s.log.Warn("pas: request not readable for criteria", "err", err)
		return
	}
	req.criteria = cr
	var (
		once  sync.Once
		prior []coverage.Prior
		known bool
		lerr  error
	)
	req.history = func() ([]coverage.Prior, bool, error) {
		once.Do(func() {
			ids := req.memberIDs()
			if len(ids) == 0 {
				return
			}
			known = true
			chains, err := s.cfg.Store.AuthorizationsByMember(ctx, ids, 500)
			if err != nil {
				lerr = err
				return
			}
			prior = priorServices(chains, authID)
		})
		return prior, known, lerr
	}
}

// priorServices lists the approved (or modified) items of a member's
// chains other than skip.
func priorServices(chains []*store.Authorization, skip string) []coverage.Prior {
	var out []coverage.Prior
	for _, a := range chains {
		if a.ID == skip {
			continue
		}
		for _, it := range a.Items {
			d := it.Decision
			if d.Action != "approve" && d.Action != "modify" {
				continue
			}
			out = append(out, coverage.Prior{Codes: []coverage.Code{{System: it.System, Code: it.Code}},
				Approved: true, At: d.At, Authorization: a.ID})
		}
	}
	return out
}

// criteriaRecord turns criteria results into what the chain stores.
func criteriaRecord(rs []coverage.CriterionResult) []store.Criterion {
	out := make([]store.Criterion, 0, len(rs))
	for _, c := range rs {
		out = append(out, store.Criterion{ID: c.ID, Description: c.Description, Finding: string(c.Finding),
			Evidence: slices.Clone(c.Evidence), Detail: c.Detail, RequestInfo: slices.Clone(c.RequestInfo)})
	}
	return out
}

// claimRequest is the request read for criteria, from the tree intake
// decoded (coverage.ParseClaimRequest without decoding the Bundle again).
func (r *request) claimRequest() (*coverage.ClaimRequest, error) {
	if !r.src.tree.Valid() {
		return coverage.ParseClaimRequest(r.raw)
	}
	root, err := r.src.tree.Resource()
	if err != nil {
		return nil, err
	}
	return coverage.ClaimRequestOf(root), nil
}
