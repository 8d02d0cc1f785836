package pas

import (
	"time"

	"github.com/priora/priora/coverage"
)

// ItemPreview is how the rules decide one item of a request.
type ItemPreview struct {
	Sequence int
	System   string
	Code     string
	Outcome  coverage.Outcome
}

// Preview decides a PAS request Bundle (or Parameters) under rules as
// $submit would, at now, storing nothing: what `priora rules test` prints.
// history gives the member's earlier services for frequency limits; nil
// leaves them unknown.
func Preview(rules *coverage.Rules, body []byte, now time.Time, history func() ([]coverage.Prior, bool, error)) ([]ItemPreview, error) {
	src, err := unwrapParameters(newSource(body), "PAS request Bundle")
	if err != nil {
		return nil, err
	}
	req, err := parseRequest(src)
	if err != nil {
		return nil, err
	}
	if rules.HasCriteria() {
		if req.criteria, err = req.claimRequest(); err != nil {
			return nil, err
		}
		req.history = history
	}
	svc := req.serviceContext()
	var out []ItemPreview
	for _, it := range req.claim.Item {
		p := ItemPreview{Sequence: it.Sequence, Outcome: rules.Decide(itemService(svc, req, it, now))}
		if it.ProductOrService != nil && len(it.ProductOrService.Coding) > 0 {
			p.System, p.Code = it.ProductOrService.Coding[0].System, it.ProductOrService.Coding[0].Code
		}
		out = append(out, p)
	}
	return out, nil
}
