package pas

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

// supportingDigests identifies each Claim.supportingInfo of a request by
// its sequence and what it says — category, code, value, timing and the
// resource it points to — so that an update's new information is told
// from what was sent before, whatever sequence it now carries.
func (r *request) supportingDigests() []string {
	var out []string
	from := r.claimFullURL()
	for _, si := range r.claim.SupportingInfo {
		h := sha256.New()
		part := func(v any) {
			b, _ := json.Marshal(v)
			h.Write(b)
			h.Write([]byte{0})
		}
		part(si.Category)
		part(si.Code)
		part(si.ValueString)
		part(si.TimingDate)
		part(si.TimingPeriod)
		if si.ValueReference != nil {
			if j := r.bundle.Resolve(si.ValueReference.Reference, from); j >= 0 {
				h.Write(r.bundle.Entry[j].Resource)
			} else {
				part(si.ValueReference)
			}
		}
		out = append(out, strconv.Itoa(si.Sequence)+"|"+hex.EncodeToString(h.Sum(nil)[:16]))
	}
	return out
}

// markNewInformation records, on a pended chain being updated, the
// supporting information the update brings that the chain did not have:
// those entries are marked new (until the next decision), the request
// stops awaiting the provider, and the payer's UM system hears of it.
// before are the chain's digests ahead of the update.
func markNewInformation(a *store.Authorization, before []string, now time.Time) {
	old := map[string]bool{}
	for _, d := range before {
		_, sum, _ := strings.Cut(d, "|")
		old[sum] = true
	}
	var fresh []int
	for _, d := range a.SupportingDigests {
		seq, sum, _ := strings.Cut(d, "|")
		if old[sum] {
			continue
		}
		if n, err := strconv.Atoi(seq); err == nil {
			fresh = append(fresh, n)
		}
	}
	if len(fresh) == 0 || a.Status == "cancelled" {
		return
	}
	waiting := awaitingInfo(a)
	a.InfoReceived = now
	for _, n := range fresh {
		if !slices.Contains(a.NewInfo, n) {
			a.NewInfo = append(a.NewInfo, n)
		}
	}
	if waiting {
		var pended []int
		for _, it := range a.Items {
			if it.Decision.Action == "pend" {
				pended = append(pended, it.Sequence)
			}
		}
		recordUMEvent(a, store.UMInfoReceived, now, pended...)
	}
}

// Extension reasons a reviewer may give for taking the 14-day extension
// of the decision deadline with a request for information (42 CFR
// 422.568(b)(1)(i) for standard, 422.572(b) for expedited requests).
var extensionReasons = map[string]string{
	"enrollee-request":     "the enrollee asked for the extension",
	"noncontract-evidence": "additional medical evidence from a noncontract provider may change a decision to deny",
	"exigent":              "extraordinary, exigent or other non-routine circumstances",
}

// ExtensionReasons lists the accepted extension reasons with their meaning.
func ExtensionReasons() [][2]string {
	var out [][2]string
	for _, k := range []string{"enrollee-request", "noncontract-evidence", "exigent"} {
		out = append(out, [2]string{k, extensionReasons[k]})
	}
	return out
}

// extensionDays is the most a deadline may be extended, once.
const extensionDays = 14

// ReopenRequest reopens decided items: a reconsideration the payer starts,
// or an appeal filed by the provider or the member, with what came with it.
type ReopenRequest struct {
	Reviewer Reviewer `json:"reviewer"`
	// Kind is reconsideration or appeal.
	Kind  string `json:"kind"`
	Items []int  `json:"items"`
	// Reason says why the items are reopened (required).
	Reason string `json:"reason"`
	// From is who filed an appeal: provider, member or representative.
	From string `json:"from,omitempty"`
	// Documents are FHIR DocumentReference resources that came with an
	// appeal (the new information), at most 10.
	Documents []json.RawMessage `json:"documents,omitempty"`
}

// appealDays is the reconsideration deadline for a standard pre-service
// request (42 CFR 422.590(a)(1): 30 calendar days); expedited ones get
// 72 hours (422.590(e)(1)).
const appealDays = 30

// Reopen puts decided items back in review: each becomes pended again
// with the decision it reopens recorded, the request is reopened in the
// queue, and an Appeal is recorded with its documents. Only a physician
// may reopen. No response is sent until the new decision, which is a new
// response version notified like any other.
func (s *Service) Reopen(ctx context.Context, by Principal, tenant, id string, rq ReopenRequest) (*TaskSummary, error) {
	if (by.Desk == "") == (by.Client == "") {
		return nil, fhir.Errorf(fhir.Forbidden, "reopening needs an authenticated payer principal: a desk account or a payer client")
	}
	var is issues
	checkReviewer(&is, "reviewer", rq.Reviewer)
	if role := RoleOf(rq.Reviewer.Role); role != RolePhysician {
		is.add("forbidden", "reviewer.role", "reopening a decided item needs a physician reviewer (this reviewer is a %s)", role)
	}
	switch rq.Kind {
	case "reconsideration", "appeal":
	default:
		is.add("value", "kind", "kind must be reconsideration or appeal")
	}
	if strings.TrimSpace(rq.Reason) == "" {
		is.add("required", "reason", "say why the items are reopened")
	}
	if len(rq.Reason) > 2000 {
		is.add("value", "reason", "the reason is longer than 2,000 characters")
	}
	switch rq.From {
	case "", "provider", "member", "representative":
	default:
		is.add("value", "from", "from must be provider, member or representative")
	}
	if len(rq.Items) == 0 {
		is.add("required", "items", "name the items to reopen")
	}
	if len(rq.Documents) > 10 {
		is.add("value", "documents", "at most 10 documents come with one appeal")
	}
	for i, raw := range rq.Documents {
		checkDocument(&is, fmt.Sprintf("documents[%d]", i), raw)
	}
	if err := issuesError(is); err != nil {
		return nil, err
	}
	who := rq.Reviewer.label()
	return s.mutate(ctx, tenant, id, func(a *store.Authorization, now time.Time) error {
		var is issues
		seen := map[int]bool{}
		for i, seq := range rq.Items {
			at := fmt.Sprintf("items[%d]", i)
			if seen[seq] {
				is.add("duplicate", at, "item %d is named twice", seq)
				continue
			}
			seen[seq] = true
			k := slices.IndexFunc(a.Items, func(it store.Item) bool { return it.Sequence == seq })
			switch {
			case k < 0:
				is.add("not-found", at, "the request has no item %d", seq)
			case !slices.Contains([]string{"approve", "deny", "modify"}, a.Items[k].Decision.Action):
				is.add("conflict", at, "item %d is not decided (it is %s)", seq, a.Items[k].Decision.Action)
			}
		}
		if err := issuesError(is); err != nil {
			return err
		}
		n := len(a.Appeals) + 1
		ap := store.Appeal{Number: n, Kind: rq.Kind, Received: now, Items: rq.Items, Reason: strings.TrimSpace(rq.Reason),
			From: rq.From, By: who, ByRole: RolePhysician, Principal: by.String()}
		for _, raw := range rq.Documents {
			key := documentKey("doc", a.ID, raw)
			if err := s.cfg.Store.SaveRequestBundle(ctx, &store.RequestBundle{Key: key, Tenant: a.Tenant, Authorization: a.ID, Received: now, Body: string(raw)}); err != nil {
				return err
			}
			ap.Documents = append(ap.Documents, key)
		}
		a.Appeals = append(a.Appeals, ap)
		for _, seq := range rq.Items {
			k := slices.IndexFunc(a.Items, func(it store.Item) bool { return it.Sequence == seq })
			item := &a.Items[k]
			reason := "reopened for reconsideration: " + ap.Reason
			if rq.Kind == "appeal" {
				reason = "appeal received: " + ap.Reason
			}
			setDecision(item, store.Decision{
				Action: "pend", ReviewAction: "A4", Reason: reason, By: "reviewer:" + who, At: now,
				ReviewNumber: item.Decision.ReviewNumber, ReviewerNPI: rq.Reviewer.NPI, ReviewerName: rq.Reviewer.Name,
				ReviewerRole: RolePhysician, Principal: by.String(), Reopened: item.Decision.Action, Appeal: n,
			})
		}
		kind := store.UMReopened
		if rq.Kind == "appeal" {
			kind = store.UMAppealReceived
		}
		recordUMEvent(a, kind, now, rq.Items...)
		settle(a)
		finishUMEvents(a, now, 0)
		return nil
	})
}

// checkDocument accepts a DocumentReference with at least one attachment
// whose data, when given, is base64.
func checkDocument(is *issues, at string, raw json.RawMessage) {
	var doc struct {
		ResourceType string `json:"resourceType"`
		Content      []struct {
			Attachment *struct {
				ContentType string `json:"contentType"`
				Data        []byte `json:"data"`
				URL         string `json:"url"`
				Title       string `json:"title"`
			} `json:"attachment"`
		} `json:"content"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		is.add("structure", at, "the document is not a FHIR DocumentReference: %s", fhir.JSONProblem(err))
		return
	}
	if doc.ResourceType != "DocumentReference" {
		is.add("value", at+".resourceType", "a document must be a DocumentReference, not %q", doc.ResourceType)
		return
	}
	if len(doc.Content) == 0 || doc.Content[0].Attachment == nil || (len(doc.Content[0].Attachment.Data) == 0 && doc.Content[0].Attachment.URL == "") {
		is.add("required", at+".content", "a document needs content[0].attachment with data or a url")
	}
}

// AppealDocuments returns the documents recorded with a chain's appeals,
// by appeal number.
func (s *Service) appealDocuments(ctx context.Context, a *store.Authorization) (map[int][]json.RawMessage, error) {
	out := map[int][]json.RawMessage{}
	for _, ap := range a.Appeals {
		for _, key := range ap.Documents {
			rb, err := s.cfg.Store.RequestBundle(ctx, key)
			if err != nil {
				return nil, err
			}
			out[ap.Number] = append(out[ap.Number], json.RawMessage(rb.Body))
		}
	}
	return out, nil
}

// AttachRequest attaches documents that reached the payer outside PAS to a
// pended request, as posted to the review API.
type AttachRequest struct {
	Reviewer Reviewer `json:"reviewer"`
	// Note says how the documents arrived (fax, portal, phone).
	Note      string            `json:"note,omitempty"`
	Documents []json.RawMessage `json:"documents"`
}

// A request keeps at most maxAttached attached documents of
// maxAttachedBytes in all: every read of the request (the review API, the
// desk) carries them.
const (
	maxAttached      = 50
	maxAttachedBytes = 24 << 20
)

// Attach adds documents to a pended request: they are marked new until
// the next decision, and a request awaiting the provider's information
// returns to the queue (its assignee kept), as when a PAS update brings
// them.
func (s *Service) Attach(ctx context.Context, by Principal, tenant, id string, rq AttachRequest) (*TaskSummary, error) {
	if (by.Desk == "") == (by.Client == "") {
		return nil, fhir.Errorf(fhir.Forbidden, "attaching documents needs an authenticated payer principal: a desk account or a payer client")
	}
	var is issues
	checkReviewer(&is, "reviewer", rq.Reviewer)
	if RoleOf(rq.Reviewer.Role) == RoleAdmin {
		is.add("forbidden", "reviewer.role", "an administrator account does not work requests")
	}
	if len(rq.Documents) == 0 {
		is.add("required", "documents", "attach at least one DocumentReference")
	}
	if len(rq.Documents) > 10 {
		is.add("value", "documents", "attach at most 10 documents at a time")
	}
	if len(rq.Note) > 2000 {
		is.add("value", "note", "the note is longer than 2,000 characters")
	}
	for i, raw := range rq.Documents {
		checkDocument(&is, fmt.Sprintf("documents[%d]", i), raw)
	}
	if err := issuesError(is); err != nil {
		return nil, err
	}
	who := rq.Reviewer.label()
	return s.mutate(ctx, tenant, id, func(a *store.Authorization, now time.Time) error {
		if err := workable(a); err != nil {
			return err
		}
		waiting := awaitingInfo(a)
		total := 0
		for _, at := range a.Attached {
			total += at.Size
		}
		for _, raw := range rq.Documents {
			total += len(raw)
		}
		if len(a.Attached)+len(rq.Documents) > maxAttached || total > maxAttachedBytes {
			return fhir.Errorf(fhir.TooLarge, "request %s would hold more than %d attached documents or %d MB of them; a request keeps at most that, so that it stays readable", a.ID, maxAttached, maxAttachedBytes>>20)
		}
		for _, raw := range rq.Documents {
			n := len(a.Attached) + 1
			key := documentKey("att", a.ID, raw)
			if err := s.cfg.Store.SaveRequestBundle(ctx, &store.RequestBundle{Key: key, Tenant: a.Tenant, Authorization: a.ID, Received: now, Body: string(raw)}); err != nil {
				return err
			}
			a.Attached = append(a.Attached, store.Attached{Number: n, Received: now, Key: key, Note: strings.TrimSpace(rq.Note),
				By: who, Principal: by.String(), New: true, Size: len(raw)})
		}
		a.InfoReceived = now
		if waiting {
			var pended []int
			for _, it := range a.Items {
				if it.Decision.Action == "pend" {
					pended = append(pended, it.Sequence)
				}
			}
			recordUMEvent(a, store.UMInfoReceived, now, pended...)
			finishUMEvents(a, now, 0)
		}
		return nil
	})
}

// documentKey is where a document attached to chain id is stored: by its
// content, so that a write redone after a concurrent change stores the
// same document under the same key.
func documentKey(kind, id string, raw []byte) string {
	sum := sha256.Sum256(raw)
	return kind + "|" + id + "|" + hex.EncodeToString(sum[:16])
}
