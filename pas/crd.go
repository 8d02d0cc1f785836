package pas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/priora/priora/coverage"
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

// assertionIDShape is what a coverage-assertion-id Priora issued looks
// like ("crd-…", letters, digits, '-' and '.'), like a FHIR id.
var assertionIDShape = regexp.MustCompile(`^[A-Za-z0-9.\-]{1,128}$`)

// applyAssertions links items to the CRD coverage assertions they carry and
// approves, without review, items whose assertion says prior authorization
// is satisfied (gold carding) — only when the assertion fits the item
// (assertionMismatch) and has not expired. An assertion that says
// "satisfied" but does not fit leaves the item to the rules, with a note in
// the response saying why it was not used.
func (s *Service) applyAssertions(ctx context.Context, req *request, a *store.Authorization, now time.Time) error {
	rules := s.cfg.Rules()
	svc := req.serviceContext()
	providers := req.providerNPIs()
	// Every item may cite the Claim's supportingInfo strings: each id is
	// read once per request, and a string no assertion id can be (free
	// text) not at all.
	seen := map[string]*store.CoverageAssertion{}
	lookup := func(id string) (*store.CoverageAssertion, error) {
		if as, ok := seen[id]; ok {
			if as == nil {
				return nil, store.ErrNotFound
			}
			return as, nil
		}
		if !assertionIDShape.MatchString(id) {
			return nil, store.ErrNotFound
		}
		as, err := s.cfg.Store.CoverageAssertion(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			seen[id] = nil
		} else if err == nil {
			seen[id] = as
		}
		return as, err
	}
	for k := range a.Items {
		item := &a.Items[k]
		if item.Cancelled {
			continue
		}
		var src fhir.ClaimItem
		if json.Unmarshal([]byte(item.ItemJSON), &src) != nil {
			continue
		}
		var notUsed []string
		for _, id := range req.assertionIDs(src) {
			as, err := lookup(id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			why := assertionMismatch(as, a, item, providers, now)
			if why == "" && as.PASatisfied {
				why = ruleStillWaives(rules.Decide(itemService(svc, req, src, now)), as)
			}
			if why != "" {
				if as.PASatisfied {
					notUsed = append(notUsed, "CRD coverage assertion "+as.ID+" was not used: "+why+".")
				}
				continue
			}
			item.CoverageAssertion = as.ID
			notUsed = nil
			// A rule may already have approved the item for its gold-carded
			// provider; the approval then names the assertion the EHR cited.
			if as.PASatisfied && (item.Decision.Action != "approve" || item.Decision.GoldCard != "") {
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
		if len(notUsed) > 0 {
			item.Decision.Note = strings.TrimSpace(item.Decision.Note + " " + strings.Join(notUsed, " "))
		}
	}
	return nil
}

// assertionMismatch says why an assertion does not fit a chain's item, ""
// when it does: it was issued to the same organization, for the same
// member, for the item's code, for no more than the quantity and within the
// period CRD saw, to a gold-carded provider who orders or requests this
// claim, and it has not expired.
func assertionMismatch(as *store.CoverageAssertion, a *store.Authorization, it *store.Item, providers []string, now time.Time) string {
	switch {
	case as.Tenant != a.Tenant:
		return "it was issued to another organization"
	case as.MemberID == "" || !contains(a.MemberIDs, as.MemberID):
		return "it was issued for another member"
	case !assertionCode(as, it):
		return "it was issued for another service"
	case as.Quantity > 0 && it.Quantity > as.Quantity:
		return fmt.Sprintf("it covers at most %s units", formatQuantity(as.Quantity))
	case as.PeriodStart != "" && it.ServiceFrom != "" && day(it.ServiceFrom) < day(as.PeriodStart),
		as.PeriodEnd != "" && it.ServiceTo != "" && day(it.ServiceTo) > day(as.PeriodEnd):
		return "the service dates fall outside the period it was issued for"
	case as.GoldCardNPI != "" && !contains(providers, as.GoldCardNPI):
		return "the claim's ordering or requesting provider is not the provider it was issued for"
	case !as.Valid(now):
		return "it expired on " + as.Expires.Format(time.DateOnly)
	}
	return ""
}

// ruleStillWaives re-checks, at submit time, the rule that waived prior
// authorization: the rule the claim item matches now must be the
// assertion's and must still waive it (for everyone, or for the
// gold-carded provider).
func ruleStillWaives(out coverage.Outcome, as *store.CoverageAssertion) string {
	if out.Rule == nil || out.RuleID() != as.RuleID {
		return "the claim no longer meets the conditions of coverage rule " + as.RuleID
	}
	if out.Rule.CRD.PANeeded == "satisfied" || (as.GoldCardNPI != "" && slices.Contains(out.Rule.CRD.GoldCard, as.GoldCardNPI)) {
		return ""
	}
	return "coverage rule " + as.RuleID + " no longer waives prior authorization"
}

// assertionCode: the assertion names the item's code.
func assertionCode(as *store.CoverageAssertion, it *store.Item) bool {
	for _, c := range as.Codes {
		if c.Code == it.Code && sameSystem(canonicalSystem(c.System), canonicalSystem(it.System)) {
			return true
		}
	}
	return false
}

func day(s string) string { return s[:min(10, len(s))] }

func formatQuantity(q float64) string { return strconv.FormatFloat(q, 'f', -1, 64) }

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
