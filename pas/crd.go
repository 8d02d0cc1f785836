package pas

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

// crdCoverageInfo is the CRD coverage-information extension an EHR copies
// from the order annotated by CRD into what it submits to PAS.
const crdCoverageInfo = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"

// assertionIDs finds the CRD coverage-assertion-ids an item carries: on the
// item itself, on the order it requests (extension-requestedService), or —
// for the whole Claim — in supportingInfo values.
func (r *request) assertionIDs(it fhir.ClaimItem) []string {
	var ids []string
	fromExts := func(exts []fhir.Extension) {
		for _, e := range exts {
			if e.URL != crdCoverageInfo {
				continue
			}
			if sub, ok := fhir.FindExtension(e.Extension, "coverage-assertion-id"); ok && sub.StringValue() != "" {
				ids = append(ids, sub.StringValue())
			}
		}
	}
	fromExts(it.Extension)
	if rs, ok := fhir.FindExtension(it.Extension, extRequestedService); ok && rs.ValueReference != nil {
		if j := r.bundle.Resolve(rs.ValueReference.Reference, r.claimFullURL()); j >= 0 {
			var order struct {
				Extension []fhir.Extension `json:"extension"`
			}
			if json.Unmarshal(r.bundle.Entry[j].Resource, &order) == nil {
				fromExts(order.Extension)
			}
		}
	}
	for _, si := range r.claim.SupportingInfo {
		if si.ValueString != nil {
			ids = append(ids, *si.ValueString)
		}
	}
	return ids
}

// applyAssertions links items to the CRD coverage assertions they carry and
// approves, without review, items whose assertion says prior authorization
// is satisfied (gold carding) — when the assertion is still valid, is for
// this member and covers the item's code.
func (s *Service) applyAssertions(ctx context.Context, req *request, a *store.Authorization, now time.Time) error {
	for k := range a.Items {
		item := &a.Items[k]
		if item.Cancelled {
			continue
		}
		var src fhir.ClaimItem
		if json.Unmarshal([]byte(item.ItemJSON), &src) != nil {
			continue
		}
		for _, id := range req.assertionIDs(src) {
			as, err := s.cfg.Store.CoverageAssertion(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if !assertionCovers(as, item, a.MemberIDs) {
				continue
			}
			item.CoverageAssertion = as.ID
			if as.PASatisfied && as.Valid(now) && item.Decision.Action != "approve" {
				setDecision(item, store.Decision{
					Action: "approve", ReviewAction: "A1", RuleID: as.RuleID, By: "crd:" + as.ID, At: now,
					RulesVersion: as.RulesVersion,
					Reason:       "prior authorization satisfied per CRD coverage assertion " + as.ID,
					Note:         "Approved without review: CRD coverage assertion " + as.ID + " said prior authorization is satisfied.",
					ReviewNumber: firstNonEmpty(as.SatisfiedPAID, item.Decision.ReviewNumber),
				})
			}
			break
		}
	}
	return nil
}

// assertionCovers: the assertion is about this item's service (when it
// names codes) and this member (when it names one).
func assertionCovers(as *store.CoverageAssertion, it *store.Item, members []string) bool {
	if as.MemberID != "" && !contains(members, as.MemberID) {
		return false
	}
	if len(as.Codes) == 0 {
		return true
	}
	for _, c := range as.Codes {
		if c.Code == it.Code && sameSystem(canonicalSystem(c.System), canonicalSystem(it.System)) {
			return true
		}
	}
	return false
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
