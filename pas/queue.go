package pas

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

// Review states of a request in the work queue. A pended request is new
// until a reviewer claims it (in review), waits for the provider while a
// request for information is unanswered (awaiting provider information),
// and is reopened while a decided item is under reconsideration or appeal;
// it is decided once no item awaits a decision.
const (
	StateNew          = "new"
	StateInReview     = "in-review"
	StateAwaitingInfo = "awaiting-info"
	StateReopened     = "reopened"
	StateDecided      = "decided"
	StateCancelled    = "cancelled"
)

// States lists the review states in workflow order.
var States = []string{StateNew, StateInReview, StateAwaitingInfo, StateReopened, StateDecided, StateCancelled}

// reviewState derives a chain's review state from its items, its assignee
// and the information it has received. settle keeps it on the chain.
func reviewState(a *store.Authorization) string {
	switch a.Status {
	case "complete":
		return StateDecided
	case "cancelled":
		return StateCancelled
	}
	if awaitingInfo(a) {
		return StateAwaitingInfo
	}
	for _, it := range a.Items {
		if it.Decision.Action == "pend" && it.Decision.Reopened != "" {
			return StateReopened
		}
	}
	if a.Assignee != nil {
		return StateInReview
	}
	return StateNew
}

// awaitingInfo: some pended item's current decision asks the provider for
// documents, and no information has arrived since that decision.
func awaitingInfo(a *store.Authorization) bool {
	for _, it := range a.Items {
		d := it.Decision
		if d.Action == "pend" && len(d.RequestInfo) > 0 && d.At.After(a.InfoReceived) {
			return true
		}
	}
	return false
}

// AssigneeKey identifies a reviewer for assignment: by NPI when they have
// one, else by name (case and spacing ignored). The desk and the review
// API name the same person the same way.
func AssigneeKey(r Reviewer) string {
	if npi := strings.TrimSpace(r.NPI); npi != "" {
		return "npi:" + npi
	}
	return "name:" + strings.ToLower(strings.Join(strings.Fields(r.Name), " "))
}

// Assignment is a claim, release or assignment of a review task, as posted
// to the review API. Reviewer is who acts (as in a decision); Assignee,
// for an assignment, is who gets the task.
type Assignment struct {
	Reviewer Reviewer  `json:"reviewer"`
	Assignee *Reviewer `json:"assignee,omitempty"`
}

func checkReviewer(is *issues, at string, r Reviewer) {
	if strings.TrimSpace(r.NPI) == "" && strings.TrimSpace(r.Name) == "" {
		is.add("required", at, "the reviewer's npi or name is required")
	}
	if r.NPI != "" && !fhir.IsNPI(r.NPI) {
		is.add("value", at+".npi", "%q is not a 10-digit NPI", r.NPI)
	}
	if r.Role != "" && !ValidRole(r.Role) {
		is.add("value", at+".role", "role %q must be one of nurse, physician, admin", r.Role)
	}
}

// Claim assigns a pended request to the reviewer taking it. It fails with
// a conflict when someone else holds it: of two reviewers claiming at
// once, exactly one gets it (the write is conditional on the version read).
func (s *Service) Claim(ctx context.Context, tenant, id string, r Reviewer) (*TaskSummary, error) {
	var is issues
	checkReviewer(&is, "reviewer", r)
	if RoleOf(r.Role) == RoleAdmin {
		is.add("forbidden", "reviewer.role", "an administrator account makes no decisions and takes no tasks")
	}
	if err := issuesError(is); err != nil {
		return nil, err
	}
	key := AssigneeKey(r)
	return s.mutate(ctx, tenant, id, func(a *store.Authorization, now time.Time) error {
		if err := workable(a); err != nil {
			return err
		}
		if a.Assignee != nil {
			if a.Assignee.Key == key {
				return errNoChange
			}
			return fhir.Errorf(fhir.Conflict, "request %s is already assigned to %s", a.ID, assigneeName(a.Assignee))
		}
		a.Assignee = &store.Assignee{Key: key, NPI: r.NPI, Name: r.Name, Role: RoleOf(r.Role), At: now, By: "self"}
		return nil
	})
}

// Release gives a request back to the queue. The assignee may release it;
// a physician or an administrator may release anyone's.
func (s *Service) Release(ctx context.Context, tenant, id string, r Reviewer) (*TaskSummary, error) {
	var is issues
	checkReviewer(&is, "reviewer", r)
	if err := issuesError(is); err != nil {
		return nil, err
	}
	key := AssigneeKey(r)
	return s.mutate(ctx, tenant, id, func(a *store.Authorization, now time.Time) error {
		if a.Assignee == nil {
			return errNoChange
		}
		if a.Assignee.Key != key && RoleOf(r.Role) == RoleNurse {
			return fhir.Errorf(fhir.Forbidden, "request %s is assigned to %s; only they, a physician or an administrator may release it", a.ID, assigneeName(a.Assignee))
		}
		a.Assignee = nil
		return nil
	})
}

// Assign gives a pended request to a reviewer (a nurse or a physician).
// Only a physician or an administrator may assign requests to others.
func (s *Service) Assign(ctx context.Context, tenant, id string, by Reviewer, to Reviewer) (*TaskSummary, error) {
	var is issues
	checkReviewer(&is, "reviewer", by)
	checkReviewer(&is, "assignee", to)
	if RoleOf(by.Role) == RoleNurse {
		is.add("forbidden", "reviewer.role", "assigning a request to another reviewer needs a physician or an administrator (this reviewer is a nurse)")
	}
	if RoleOf(to.Role) == RoleAdmin {
		is.add("value", "assignee.role", "an administrator account makes no decisions; assign the request to a nurse or a physician")
	}
	if err := issuesError(is); err != nil {
		return nil, err
	}
	key := AssigneeKey(to)
	return s.mutate(ctx, tenant, id, func(a *store.Authorization, now time.Time) error {
		if err := workable(a); err != nil {
			return err
		}
		if a.Assignee != nil && a.Assignee.Key == key {
			return errNoChange
		}
		a.Assignee = &store.Assignee{Key: key, NPI: to.NPI, Name: to.Name, Role: RoleOf(to.Role), At: now, By: AssigneeKey(by)}
		return nil
	})
}

// workable refuses to assign a request that awaits no decision.
func workable(a *store.Authorization) error {
	if a.Status != "pended" {
		return fhir.Errorf(fhir.Conflict, "request %s awaits no decision (it is %s)", a.ID, a.Status)
	}
	return nil
}

func assigneeName(as *store.Assignee) string {
	if as.Name != "" {
		return as.Name
	}
	return strings.TrimPrefix(strings.TrimPrefix(as.Key, "npi:"), "name:")
}

// mutate runs one change of a chain that makes no new response version
// (an assignment, an attachment): the version it writes carries the
// review state the change leads to.
func (s *Service) mutate(ctx context.Context, tenant, id string, apply func(*store.Authorization, time.Time) error) (*TaskSummary, error) {
	a, now, err := s.retryOnConflict(ctx, tenant, id, apply, func(a *store.Authorization, _ time.Time) error {
		a.State = reviewState(a)
		return s.cfg.Store.UpdateAuthorization(ctx, a)
	})
	if err != nil {
		return nil, err
	}
	t := summarize(a, now)
	return &t, nil
}

// DefaultDuplicateWindow is how close in time two requests for the same
// member and code must be to be flagged as possible duplicates.
const DefaultDuplicateWindow = 30 * 24 * time.Hour

// duplicateWindow is the configured window.
func (s *Service) duplicateWindow() time.Duration {
	if s.cfg.DuplicateWindow > 0 {
		return s.cfg.DuplicateWindow
	}
	return DefaultDuplicateWindow
}

// markDuplicates flags, on each summary, the other requests for the same
// member and an item with the same code received within the window
// (cancelled requests and test data of the other kind aside).
func (s *Service) markDuplicates(ctx context.Context, ts []TaskSummary, chains []*store.Authorization, members []string) error {
	if len(ts) == 0 {
		return nil
	}
	w := s.duplicateWindow()
	from, to := chains[0].Created, chains[0].Created
	for _, a := range chains {
		if a.Created.Before(from) {
			from = a.Created
		}
		if a.Created.After(to) {
			to = a.Created
		}
	}
	sibs, err := s.cfg.Store.Siblings(ctx, from.Add(-w), to.Add(w), members)
	if err != nil {
		return err
	}
	byMember := map[string][]int{}
	for i, sb := range sibs {
		for _, m := range sb.MemberIDs {
			byMember[m] = append(byMember[m], i)
		}
	}
	for k, a := range chains {
		codes := map[string]bool{}
		for _, it := range a.Items {
			if it.Code != "" {
				codes[it.System+"|"+it.Code] = true
			}
		}
		seen := map[string]bool{a.ID: true}
		for _, m := range a.MemberIDs {
			for _, i := range byMember[m] {
				sb := sibs[i]
				if seen[sb.ID] || sb.Status == "cancelled" || sb.Test != a.Test {
					continue
				}
				if d := sb.Created.Sub(a.Created); d > w || d < -w {
					continue
				}
				if slices.ContainsFunc(sb.Items, func(it struct {
					System string `bson:"system"`
					Code   string `bson:"code"`
				}) bool {
					return codes[it.System+"|"+it.Code]
				}) {
					seen[sb.ID] = true
					ts[k].Duplicates = append(ts[k].Duplicates, sb.ID)
				}
			}
		}
		slices.Sort(ts[k].Duplicates)
	}
	return nil
}

// markNotified says on each summary what the EHR was told of the
// request's latest event (store.Notified*).
func (s *Service) markNotified(ctx context.Context, ts []TaskSummary, chains []*store.Authorization) error {
	latest := map[string]int{}
	for _, a := range chains {
		n := 0
		if len(a.Events) > 0 {
			n = a.Events[len(a.Events)-1].Number
		}
		latest[a.ID] = n
	}
	states, err := s.cfg.Store.NotifiedStates(ctx, latest)
	if err != nil {
		return err
	}
	for i := range ts {
		ts[i].Notified = states[ts[i].ID]
	}
	return nil
}

// decidedSummary fills a decided request's outcome, when its last item
// was decided and by whom.
func decidedSummary(t *TaskSummary, a *store.Authorization) {
	if a.Status == "pended" {
		return
	}
	switch r := classify(a).result; r {
	case "partial":
		t.Outcome = "partially-approved"
	default:
		t.Outcome = r
	}
	var by []string
	for _, it := range a.Items {
		d := it.Decision
		if d.At.After(t.DecidedAt) {
			t.DecidedAt = d.At
		}
	}
	for _, it := range a.Items {
		d := it.Decision
		if !d.At.Equal(t.DecidedAt) {
			continue
		}
		who := d.ReviewerName
		if who == "" && d.ReviewerNPI != "" {
			who = "NPI " + d.ReviewerNPI
		}
		if who == "" {
			switch kind, id, _ := strings.Cut(d.By, ":"); kind {
			case "rule":
				who = "rule " + id
			case "crd":
				who = "CRD coverage assertion"
			case "client":
				who = "the provider (withdrawn)"
			default:
				who = d.By
			}
		}
		if !slices.Contains(by, who) {
			by = append(by, who)
		}
	}
	t.DecidedBy = strings.Join(by, ", ")
}
