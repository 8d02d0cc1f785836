package pas

import (
	"context"
	"errors"
	"time"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

// X12 901 reject reasons and 889 follow-up actions used for business errors.
const (
	rejectAuthorizationNotFound = "AA" // Authorization Number Not Found
	followupNoResubmission      = "N"  // Resubmission Not Allowed
)

// update applies a PAS Claim Update to the chain it replaces (PAS 2.2.1
// "Updating Authorization Requests"). The chain is found by the client's
// own keys — the prior Claim's fullUrl, then its identifiers — never by
// Priora's ids. The write is guarded by the chain's version and redone on
// a concurrent change.
func (s *Service) update(ctx context.Context, who Caller, req *request, key string, elig *eligibility) (*Answer, error) {
	keys := []string{"url|" + req.priorFullURL}
	if req.prior != nil {
		for _, id := range req.prior.Identifier {
			keys = append(keys, "claim|"+id.Key())
		}
	}
	for attempt := 0; attempt < 8; attempt++ {
		a, err := s.cfg.Store.AuthorizationByClaimKey(ctx, who.Tenant, keys[:1])
		if errors.Is(err, store.ErrNotFound) {
			a, err = s.cfg.Store.AuthorizationByClaimKey(ctx, who.Tenant, keys[1:])
		}
		if errors.Is(err, store.ErrNotFound) {
			// The request being updated never reached Priora (it went
			// elsewhere, or predates this server): decide the update as a
			// new request, so the provider gets an answer for every item.
			s.log.InfoContext(ctx, "update of a request not on file; deciding it as a new request")
			return s.create(ctx, who, req, key, elig)
		}
		if err != nil {
			return nil, err
		}
		if _, done := a.SubmissionByKey(key); done {
			return replay(a, key)
		}
		if a.Status == "cancelled" || allDenied(a) {
			return s.reject(req, businessError{
				Code: rejectAuthorizationNotFound, Followup: followupNoResubmission,
				Path: "Bundle.entry[0].resource.related[0].claim", Element: "2000E-REF02",
				Note: "This prior authorization request was " + map[bool]string{true: "cancelled", false: "denied"}[a.Status == "cancelled"] +
					" and cannot be updated. Submit a new prior authorization request.",
			})
		}
		if err := s.cfg.Store.SaveRequestBundle(ctx, &store.RequestBundle{
			Key: key, Tenant: who.Tenant, Authorization: a.ID, Received: s.cfg.Now().UTC(), Body: string(req.raw),
		}); err != nil {
			return nil, err
		}
		answer, err := s.applyUpdate(ctx, who, a, req, key, elig)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return answer, err
	}
	return nil, &fhir.Error{Kind: fhir.Unavailable, Message: "the prior authorization is being changed concurrently; retry the update"}
}

func allDenied(a *store.Authorization) bool {
	live := 0
	for _, it := range a.Items {
		switch it.Decision.Action {
		case "cancel":
		case "deny":
			live++
		default:
			return false
		}
	}
	return live > 0
}

// reject answers business errors without touching stored state.
func (s *Service) reject(req *request, bes ...businessError) (*Answer, error) {
	now := s.cfg.Now().UTC()
	a := &store.Authorization{ID: "PA-rejected", Created: now}
	s.index(a, req)
	for i, it := range req.claim.Item {
		rec := itemRecord(it, req.rawItems[i])
		rec.Decision = store.Decision{Action: "deny", ReviewAction: "A3", At: now}
		a.Items = append(a.Items, rec)
	}
	body, outcome, err := buildResponse(responseInput{
		auth: a, claim: req.claim, claimItems: req.rawItems, claimFullURL: req.claimFullURL(), bundleID: req.bundle.Identifier,
		now: now, number: 1, businessErrors: bes, authDays: s.cfg.Rules().Defaults.AuthorizationDays,
	})
	if err != nil {
		return nil, err
	}
	return &Answer{Body: body, Outcome: outcome}, nil
}

// applyUpdate merges the update's items into the chain and writes it.
func (s *Service) applyUpdate(ctx context.Context, who Caller, a *store.Authorization, req *request, key string, elig *eligibility) (*Answer, error) {
	now := s.cfg.Now().UTC().Truncate(time.Millisecond)
	before := a.SupportingDigests
	// Whether the request awaited the provider's information, asked before
	// the update re-decides its items (which clears the request).
	wasWaiting := awaitingInfo(a)
	rules := s.cfg.Rules()
	svc := req.serviceContext()
	s.prepareCriteria(ctx, req, rules, a.ID)
	cancelAll := req.claimCancelled()
	bySeq := map[int]int{}
	for i, it := range a.Items {
		bySeq[it.Sequence] = i
	}
	for n, it := range req.claim.Item {
		rec := itemRecord(it, req.rawItems[n])
		i, known := bySeq[it.Sequence]
		change, _ := fhir.FindExtension(it.Extension, extInfoChanged)
		changed := change.ValueCode != nil
		switch {
		case !known:
			rec.Decision = decide(rules, elig.service(svc, n), req, it, a.ID, now)
			if rec.Cancelled || cancelAll {
				rec.Decision = cancelled(now, a.ID, it.Sequence)
			}
			a.Items = append(a.Items, rec)
		case rec.Cancelled || cancelAll:
			if a.Items[i].Decision.Action != "cancel" {
				setDecision(&a.Items[i], cancelled(now, a.ID, it.Sequence))
			}
			a.Items[i].Cancelled = true
			a.Items[i].ItemJSON = rec.ItemJSON
		case changed:
			prev := a.Items[i]
			rec.History = prev.History
			rec.Decision = prev.Decision
			setDecision(&rec, decide(rules, elig.service(svc, n), req, it, a.ID, now))
			a.Items[i] = rec
		}
	}
	if cancelAll {
		for i := range a.Items {
			if a.Items[i].Decision.Action != "cancel" {
				setDecision(&a.Items[i], cancelled(now, a.ID, a.Items[i].Sequence))
				a.Items[i].Cancelled = true
			}
		}
	}
	if err := s.applyAssertions(ctx, req, a, now); err != nil {
		return nil, err
	}
	s.index(a, req)
	markNewInformation(a, before, now)
	if wasWaiting && a.InfoReceived.Equal(now) {
		infoReceived(a, now)
	}
	if e := elig.record(); e != nil {
		a.Eligibility = e
	}
	number := len(a.Responses) + 1
	a.Submissions = append(a.Submissions, newSubmission(req, key, now, number))
	a.SubmissionKeys = append(a.SubmissionKeys, key)
	settle(a)
	a.Updated = now
	body, outcome, err := buildResponse(responseInput{
		auth: a, claim: req.claim, claimItems: req.rawItems, claimFullURL: req.claimFullURL(), bundleID: req.bundle.Identifier,
		now: now, number: number, authDays: rules.Defaults.AuthorizationDays,
	})
	if err != nil {
		return nil, err
	}
	a.Responses = append(a.Responses, store.Response{Number: number, Created: now, Outcome: outcome, JSON: string(body)})
	finishUMEvents(a, now, number)
	if err := s.cfg.Store.UpdateAuthorization(ctx, a); err != nil {
		return nil, err
	}
	s.countDecided(a, now)
	return &Answer{Body: body, Authorization: a.ID, Outcome: outcome}, nil
}

// setDecision replaces an item's decision, keeping the old one in history.
func setDecision(it *store.Item, d store.Decision) {
	if it.Decision.Action != "" {
		it.History = append(it.History, it.Decision)
	}
	it.Decision = d
}
