package pas

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/priora/priora/coverage"
	"github.com/priora/priora/members"
	"github.com/priora/priora/store"
)

// X12 901 (AAA03) reject reasons and 889 (AAA04) follow-up actions for
// eligibility errors. X12 code lists are licensed: the codes are used, and
// described here in our own words; README "Members and eligibility" gives
// the mapping and its sources.
const (
	rejectMemberIDMissing  = "72" // subscriber/insured id missing or not valid
	rejectNameMismatch     = "73" // subscriber/insured name missing or not valid
	rejectPatientName      = "65" // patient (dependent) name missing or not valid
	rejectBirthDateDiffers = "71" // birth date differs from the one on file
	rejectBirthDateMissing = "58" // birth date missing or not valid
	rejectMemberNotFound   = "75" // subscriber/insured not found
	rejectPatientNotFound  = "77" // subscriber found, patient (dependent) not found
	rejectNotInPlan        = "78" // subscriber/insured not in the group or plan identified
	rejectServiceDates     = "57" // dates of service missing or not valid (no coverage then)
	rejectPayerNotServed   = "79" // participant (here: the payer) identification not valid
	followupCorrect        = "C"  // correct the request and resubmit
)

// eligibility is what the roster said of a request.
type eligibility struct {
	mode   members.Mode
	result *members.Result
	errors []businessError
}

// plan is the roster plan of item i's coverage, when the member was found.
func (e *eligibility) plan(i int) (string, bool) {
	if e == nil || e.result == nil || e.result.Member == nil {
		return "", false
	}
	return e.result.Plan(i), true
}

func (e *eligibility) record() *store.Eligibility {
	if e == nil || e.result == nil {
		return nil
	}
	return e.result.Record(e.mode)
}

// served is the payer list this instance serves: PRIORA_PAYER_IDS, else
// the rules file's payers (empty: every payer).
func (s *Service) served(rules *coverage.Rules) []coverage.PayerID {
	if len(s.cfg.PayerIDs) > 0 {
		return s.cfg.PayerIDs
	}
	return rules.Payers
}

// checkEligibility enforces the payer list and, when the roster is in
// force, finds the member and their coverage on the dates of service.
func (s *Service) checkEligibility(ctx context.Context, req *request, rules *coverage.Rules) (*eligibility, error) {
	e := &eligibility{}
	want := s.served(rules)
	serves := func(system, value string) bool {
		return len(want) == 0 || coverage.Served([]coverage.PayerID{{System: system, Value: value}}, want)
	}
	if len(want) > 0 && req.coverage != nil && !coverage.Served(req.serviceContext().Payers, want) {
		e.errors = append(e.errors, businessError{
			Code: rejectPayerNotServed, Followup: followupNoResubmission, Element: "2010A-NM109",
			Path: fmt.Sprintf("Bundle.entry[%d].resource.payor[0]", req.coverageEntry),
			Note: "The coverage is with a payer this prior-authorization service does not answer for; send the request to the member's payer.",
		})
		return e, nil
	}
	mode, err := s.cfg.Roster.Effective(ctx)
	if err != nil {
		return nil, err
	}
	if mode == members.Off {
		return nil, nil
	}
	e.mode = mode
	q := req.memberQuery()
	q.Serves = serves
	res, err := s.cfg.Roster.Check(ctx, q)
	if err != nil {
		return nil, err
	}
	e.result = res
	if mode == members.Enforce {
		e.errors = eligibilityErrors(req, q, res)
	}
	return e, nil
}

// eligibilityErrors are the business errors of a result that is not eligible.
func eligibilityErrors(req *request, q members.Query, res *members.Result) []businessError {
	dependent := res.Member != nil && res.Member.Relationship != "" && res.Member.Relationship != "self"
	loop := "2010C"
	if dependent || q.Relationship != "" && q.Relationship != "self" {
		loop = "2010D"
	}
	var out []businessError
	switch res.Status {
	case members.NotFound:
		be := businessError{Code: rejectMemberNotFound, Followup: followupCorrect, Element: "2010C-NM109", Path: res.Path,
			Note: res.Reason + "."}
		switch {
		case res.SubscriberFound:
			be.Code, be.Element = rejectPatientNotFound, "2010D-NM103"
		case len(q.MemberIDs) == 0 && q.SubscriberID == "":
			be.Code = rejectMemberIDMissing
			be.Note = "The request gives no member id (Coverage.identifier of type MB, or subscriberId) to find the member by."
		}
		if be.Path == "" {
			be.Path = fmt.Sprintf("Bundle.entry[%d].resource", max(req.coverageEntry, req.patientEntry))
		}
		out = append(out, be)
	case members.Mismatch:
		for _, d := range res.Mismatches {
			be := businessError{Followup: followupCorrect, Path: d.Path}
			switch d.Field {
			case "birthDate":
				be.Code, be.Element = rejectBirthDateDiffers, loop+"-DMG02"
				be.Note = "The patient's birth date is not the member's birth date on file; check it and resubmit."
			default:
				be.Code, be.Element = rejectNameMismatch, loop+"-NM103"
				if loop == "2010D" {
					be.Code = rejectPatientName
				}
				be.Note = "The patient's name is not the member's name on file; check it and resubmit."
			}
			out = append(out, be)
		}
	case members.NoCoverage:
		for _, d := range res.Uncovered {
			be := businessError{Code: rejectServiceDates, Followup: followupCorrect, Element: "2000F-DTP03", Path: d.Path,
				Note: "The member has no coverage in effect on " + d.Start + "."}
			if res.OtherPayer {
				be.Code, be.Element = rejectNotInPlan, loop+"-NM109"
				be.Note = "On " + d.Start + " the member is covered by a payer this service does not answer for."
			}
			out = append(out, be)
		}
	}
	return out
}

// memberQuery is what the request says of its member.
func (r *request) memberQuery() members.Query {
	var q members.Query
	if cov := r.coverage; cov != nil {
		at := fmt.Sprintf("Bundle.entry[%d].resource", r.coverageEntry)
		for i, id := range cov.Identifier {
			if c, ok := id.Type.Code(sysIdentifierType); ok && c.Code == "MB" && id.Value != "" {
				q.MemberIDs = append(q.MemberIDs, members.ID{System: id.System, Value: id.Value, Path: fmt.Sprintf("%s.identifier[%d]", at, i)})
			}
		}
		rel := ""
		if cov.Relationship != nil {
			if c, ok := cov.Relationship.Code("http://terminology.hl7.org/CodeSystem/subscriber-relationship"); ok {
				rel = c.Code
			}
		}
		q.Relationship = rel
		if cov.SubscriberID != "" {
			q.SubscriberID, q.SubscriberIDPath = cov.SubscriberID, at+".subscriberId"
			if rel == "self" || rel == "" {
				q.MemberIDs = append(q.MemberIDs, members.ID{Value: cov.SubscriberID, Path: at + ".subscriberId"})
			}
		}
	}
	if p := r.party(r.patientEntry); p != nil {
		at := fmt.Sprintf("Bundle.entry[%d].resource", r.patientEntry)
		for i, id := range p.Identifier {
			if c, ok := id.Type.Code(sysIdentifierType); ok && c.Code == "MB" && id.Value != "" {
				q.MemberIDs = append(q.MemberIDs, members.ID{System: id.System, Value: id.Value, Path: fmt.Sprintf("%s.identifier[%d]", at, i)})
			}
		}
		var names []struct {
			Use    string   `json:"use"`
			Family string   `json:"family"`
			Given  []string `json:"given"`
		}
		if json.Unmarshal(p.Name, &names) == nil {
			for i, n := range names {
				if n.Use != "old" && n.Use != "maiden" && n.Family != "" {
					q.Family, q.Given, q.NamePath = n.Family, n.Given, fmt.Sprintf("%s.name[%d]", at, i)
					break
				}
			}
		}
		if p.BirthDate != "" {
			q.BirthDate, q.BirthDatePath = p.BirthDate, at+".birthDate"
		}
	}
	at := fmt.Sprintf("Bundle.entry[%d].resource", r.claimEntry)
	for k, it := range r.claim.Item {
		switch {
		case it.ServicedDate != nil:
			q.Dates = append(q.Dates, members.Span{Start: *it.ServicedDate, Path: fmt.Sprintf("%s.item[%d].servicedDate", at, k)})
		case it.ServicedPeriod != nil && it.ServicedPeriod.Start != "":
			q.Dates = append(q.Dates, members.Span{Start: it.ServicedPeriod.Start, End: it.ServicedPeriod.End, Path: fmt.Sprintf("%s.item[%d].servicedPeriod.start", at, k)})
		default:
			q.Dates = append(q.Dates, members.Span{Start: r.claim.Created, Path: at + ".created"})
		}
	}
	return q
}

// service is svc for item i: with the roster's plan when the member was
// found (not the plan the EHR's Coverage.class names).
func (e *eligibility) service(svc coverage.Service, i int) coverage.Service {
	if p, ok := e.plan(i); ok {
		svc.Plan = p
	}
	if e != nil && e.result != nil {
		v := e.result.ViewAt(i)
		svc.Member = &v
	}
	return svc
}
