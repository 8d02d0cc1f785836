package pas

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

// TaskSummary is one line of the review queue.
type TaskSummary struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	Received  time.Time `json:"received"`
	DueAt     time.Time `json:"dueAt"`
	Expedited bool      `json:"expedited"`
	Overdue   bool      `json:"overdue"`
	// Test marks test data (HTEST or a test client).
	Test        bool     `json:"test,omitempty"`
	Patient     string   `json:"patient,omitempty"`
	MemberID    string   `json:"memberId,omitempty"`
	Provider    string   `json:"provider,omitempty"`
	Services    []string `json:"services,omitempty"`
	Category    string   `json:"category,omitempty"`
	PendedItems int      `json:"pendedItems"`
	// Eligibility is what the member roster said (nil: not checked).
	Eligibility *store.Eligibility `json:"eligibility,omitempty"`

	// State is the review state (pas.State*).
	State string `json:"state"`
	// Assignee is the reviewer working the request (absent: unassigned).
	Assignee *store.Assignee `json:"assignee,omitempty"`
	// ExtendedFrom is the deadline before the 14-day extension was taken.
	ExtendedFrom time.Time `json:"extendedFrom,omitzero"`
	// NewInfo counts supporting information the provider sent after a
	// request for it, not yet seen by a decision.
	NewInfo int `json:"newInfo,omitempty"`
	// Outcome (approved, partially-approved, denied or cancelled),
	// DecidedAt and DecidedBy describe a decided request's last decision.
	Outcome   string    `json:"outcome,omitempty"`
	DecidedAt time.Time `json:"decidedAt,omitzero"`
	DecidedBy string    `json:"decidedBy,omitempty"`
	// Duplicates are other requests for the same member and an item with
	// the same code received within the duplicate window.
	Duplicates []string `json:"possibleDuplicates,omitempty"`
	// Notified is what the EHR was told of the latest response version
	// made after the synchronous answer: none (there is none), pending,
	// delivered, failing or no-subscription.
	Notified string `json:"ehrNotified,omitempty"`
}

// TaskItem is one item as a reviewer sees it.
type TaskItem struct {
	Sequence    int              `json:"sequence"`
	System      string           `json:"system"`
	Code        string           `json:"code"`
	Display     string           `json:"display,omitempty"`
	Quantity    float64          `json:"quantity,omitempty"`
	Unit        string           `json:"unit,omitempty"`
	ServiceFrom string           `json:"serviceFrom,omitempty"`
	ServiceTo   string           `json:"serviceTo,omitempty"`
	Decision    store.Decision   `json:"decision"`
	History     []store.Decision `json:"history,omitempty"`
	// DisplaySource says where Display comes from: the request, or a
	// shipped code list (DisplayHCPCS); empty when there is none.
	DisplaySource string `json:"displaySource,omitempty"`
	// Diagnoses are the Claim.diagnosis sequences that support the item
	// (Claim.item.diagnosisSequence).
	Diagnoses []int `json:"diagnosisSequence,omitempty"`
}

// TaskDiagnosis is one coded diagnosis of the request with the items it
// supports.
type TaskDiagnosis struct {
	Sequence int `json:"sequence"`
	fhir.Coding
	DisplaySource string `json:"displaySource,omitempty"`
	// Items are the item sequences that point to this diagnosis.
	Items []int `json:"items,omitempty"`
}

// SupportingInfo is one Claim.supportingInfo with the resource it points to.
type SupportingInfo struct {
	Sequence int             `json:"sequence"`
	Category string          `json:"category,omitempty"`
	Type     string          `json:"type,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	// New marks information the provider sent after a request for it,
	// not yet seen by a decision.
	New bool `json:"new,omitempty"`
}

// AttachedInfo is a document the payer's staff attached to the request.
type AttachedInfo struct {
	Number   int             `json:"number"`
	Received time.Time       `json:"received"`
	Note     string          `json:"note,omitempty"`
	By       string          `json:"by"`
	New      bool            `json:"new,omitempty"`
	Document json.RawMessage `json:"document"`
}

// AppealInfo is a reconsideration or appeal with the documents that came with it.
type AppealInfo struct {
	store.Appeal
	Due       time.Time         `json:"due"`
	Documents []json.RawMessage `json:"documents,omitempty"`
}

// TaskDetail is everything a reviewer needs to decide.
type TaskDetail struct {
	TaskSummary
	Items          []TaskItem       `json:"items"`
	Diagnoses      []TaskDiagnosis  `json:"diagnoses,omitempty"`
	SupportingInfo []SupportingInfo `json:"supportingInfo,omitempty"`
	Responses      []ResponseInfo   `json:"responses"`
	// Request is the latest request Bundle as submitted.
	Request json.RawMessage `json:"request,omitempty"`
	// Appeals are the reconsiderations and appeals, oldest first.
	Appeals []AppealInfo `json:"appeals,omitempty"`
	// Attached are documents the payer's staff attached, oldest first.
	Attached []AttachedInfo `json:"attached,omitempty"`
	// ExtensionReason says why the deadline was extended (ExtendedFrom).
	ExtensionReason string `json:"extensionReason,omitempty"`
}

// ResponseInfo lists a response version.
type ResponseInfo struct {
	Number  int       `json:"number"`
	Created time.Time `json:"created"`
	Outcome string    `json:"outcome"`
}

// Queue lists review tasks (prior authorization chains) for reviewers.
func (s *Service) Queue(ctx context.Context, f store.ReviewFilter) ([]TaskSummary, error) {
	if f.Overdue {
		f.OverdueAt = s.cfg.Now().UTC()
	}
	chains, err := s.cfg.Store.ReviewQueue(ctx, f)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	out := make([]TaskSummary, 0, len(chains))
	kept := chains[:0]
	for _, a := range chains {
		t := summarize(a, now)
		// The store filters on the original (or extended) deadline; a
		// reopened item runs on the reconsideration clock, which only the
		// summary knows.
		if f.Overdue && !t.Overdue {
			continue
		}
		out = append(out, t)
		kept = append(kept, a)
	}
	chains = kept
	if err := s.markDuplicates(ctx, out, chains, nil); err != nil {
		return nil, err
	}
	if err := s.markNotified(ctx, out, chains); err != nil {
		return nil, err
	}
	return out, nil
}

func summarize(a *store.Authorization, now time.Time) TaskSummary {
	t := TaskSummary{
		ID: a.ID, Status: a.Status, Received: a.Created, DueAt: a.DueAt, Expedited: a.Expedited, Test: a.Test,
		Overdue: a.Status == "pended" && now.After(a.DueAt),
		Patient: a.Summary.PatientName, MemberID: a.Summary.MemberID, Provider: a.Summary.ProviderName,
		Services: a.Summary.Services, Category: a.Summary.Category, Eligibility: a.Eligibility,
		State: reviewState(a), Assignee: a.Assignee, ExtendedFrom: a.ExtendedFrom, NewInfo: len(a.NewInfo),
	}
	for _, at := range a.Attached {
		if at.New {
			t.NewInfo++
		}
	}
	if len(a.Items) > 0 {
		t.Services = nil
		for _, it := range a.Items {
			disp, _ := codeDisplay(it.System, it.Code, it.Display)
			t.Services = append(t.Services, strings.TrimSpace(it.Code+" "+disp))
		}
	}
	for _, it := range a.Items {
		if it.Decision.Action == "pend" {
			t.PendedItems++
		}
	}
	if t.State == StateReopened && len(a.Appeals) > 0 {
		// A reconsideration runs on its own clock: 30 calendar days for a
		// standard pre-service request, 72 hours expedited (42 CFR 422.590).
		ap := a.Appeals[len(a.Appeals)-1]
		t.DueAt = ap.Received.AddDate(0, 0, appealDays)
		if a.Expedited {
			t.DueAt = ap.Received.Add(72 * time.Hour)
		}
		t.Overdue = now.After(t.DueAt)
	}
	decidedSummary(&t, a)
	return t
}

// Task returns one review task with the request, its supporting
// information and the rules that fired. tenant "" allows any tenant.
func (s *Service) Task(ctx context.Context, tenant, id string) (*TaskDetail, error) {
	a, err := s.cfg.Store.Authorization(ctx, tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fhir.Errorf(fhir.NotFound, "no prior authorization request %s", id)
	}
	if err != nil {
		return nil, err
	}
	d := &TaskDetail{TaskSummary: summarize(a, s.cfg.Now())}
	one := []TaskSummary{d.TaskSummary}
	if err := s.markDuplicates(ctx, one, []*store.Authorization{a}, a.MemberIDs); err != nil {
		return nil, err
	}
	if err := s.markNotified(ctx, one, []*store.Authorization{a}); err != nil {
		return nil, err
	}
	d.TaskSummary = one[0]
	for _, it := range a.Items {
		ti := TaskItem{
			Sequence: it.Sequence, System: it.System, Code: it.Code,
			Quantity: it.Quantity, Unit: it.Unit, ServiceFrom: it.ServiceFrom, ServiceTo: it.ServiceTo,
			Decision: it.Decision, History: it.History,
		}
		ti.Display, ti.DisplaySource = codeDisplay(it.System, it.Code, it.Display)
		var ci struct {
			DiagnosisSequence []int `json:"diagnosisSequence"`
		}
		if json.Unmarshal([]byte(it.ItemJSON), &ci) == nil {
			ti.Diagnoses = ci.DiagnosisSequence
		}
		d.Items = append(d.Items, ti)
	}
	for _, r := range a.Responses {
		d.Responses = append(d.Responses, ResponseInfo{Number: r.Number, Created: r.Created, Outcome: r.Outcome})
	}
	docs, err := s.appealDocuments(ctx, a)
	if err != nil {
		return nil, err
	}
	for _, ap := range a.Appeals {
		due := ap.Received.AddDate(0, 0, appealDays)
		if a.Expedited {
			due = ap.Received.Add(72 * time.Hour)
		}
		d.Appeals = append(d.Appeals, AppealInfo{Appeal: ap, Due: due, Documents: docs[ap.Number]})
	}
	d.ExtensionReason = a.ExtensionReason
	for _, at := range a.Attached {
		rb, err := s.cfg.Store.RequestBundle(ctx, at.Key)
		if err != nil {
			return nil, err
		}
		d.Attached = append(d.Attached, AttachedInfo{Number: at.Number, Received: at.Received, Note: at.Note, By: at.By, New: at.New, Document: json.RawMessage(rb.Body)})
	}
	if n := len(a.Submissions); n > 0 {
		rb, err := s.cfg.Store.RequestBundle(ctx, a.Submissions[n-1].Key)
		if err == nil {
			d.Request = json.RawMessage(rb.Body)
			d.SupportingInfo, d.Diagnoses = supportingInfo(rb.Body)
			for i := range d.Diagnoses {
				dx := &d.Diagnoses[i]
				dx.Display, dx.DisplaySource = codeDisplay(dx.System, dx.Code, dx.Display)
				for _, it := range d.Items {
					if slices.Contains(it.Diagnoses, dx.Sequence) {
						dx.Items = append(dx.Items, it.Sequence)
					}
				}
			}
			for i := range d.SupportingInfo {
				d.SupportingInfo[i].New = slices.Contains(a.NewInfo, d.SupportingInfo[i].Sequence)
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	return d, nil
}

// supportingInfo resolves the Claim's supportingInfo entries and lists its
// coded diagnoses.
func supportingInfo(raw string) ([]SupportingInfo, []TaskDiagnosis) {
	b, err := fhir.DecodeBundle([]byte(raw))
	if err != nil || len(b.Entry) == 0 {
		return nil, nil
	}
	var c fhir.Claim
	if json.Unmarshal(b.Entry[0].Resource, &c) != nil {
		return nil, nil
	}
	var out []SupportingInfo
	for _, si := range c.SupportingInfo {
		info := SupportingInfo{Sequence: si.Sequence}
		if cd, ok := si.Category.Code(""); ok {
			info.Category = cd.Code
		}
		if si.ValueReference != nil {
			if j := b.Resolve(si.ValueReference.Reference, b.Entry[0].FullURL); j >= 0 {
				info.Type, info.Resource = b.Entry[j].Type, b.Entry[j].Resource
			}
		}
		out = append(out, info)
	}
	var dx []TaskDiagnosis
	for _, d := range c.Diagnosis {
		if d.DiagnosisCodeableConcept != nil {
			for _, cd := range d.DiagnosisCodeableConcept.Coding {
				dx = append(dx, TaskDiagnosis{Sequence: d.Sequence, Coding: cd})
			}
		}
	}
	return out, dx
}
