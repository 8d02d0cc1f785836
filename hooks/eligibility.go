package hooks

import (
	"context"
	"fmt"
	"time"

	"github.com/priora/priora/coverage"
	"github.com/priora/priora/members"
)

// checkRoster matches the call's patient and Coverage against the payer's
// member roster, when eligibility is in force (enforce, or auto with a
// roster). The result overrides what the EHR's own Coverage says: a member
// who is not on file is not covered (CRD resp-44), one without coverage in
// effect today is not covered (resp-45), and plan rules use the roster's
// plan. In warn mode the result is logged and the answer is as without a
// roster.
func (c *call) checkRoster(ctx context.Context) error {
	mode, err := c.s.cfg.Roster.Effective(ctx)
	if err != nil || mode == members.Off || c.cov == nil {
		return err
	}
	q := members.Query{}
	for _, id := range c.cov.Identifier {
		if id.Type != nil {
			if cd, ok := id.Type.Code("http://terminology.hl7.org/CodeSystem/v2-0203"); ok && cd.Code == "MB" && id.Value != "" {
				q.MemberIDs = append(q.MemberIDs, members.ID{System: id.System, Value: id.Value})
			}
		}
	}
	if c.cov.Relationship != nil {
		if cd, ok := c.cov.Relationship.Code("http://terminology.hl7.org/CodeSystem/subscriber-relationship"); ok {
			q.Relationship = cd.Code
		}
	}
	if c.cov.SubscriberID != "" {
		q.SubscriberID = c.cov.SubscriberID
		if q.Relationship == "" || q.Relationship == "self" {
			q.MemberIDs = append(q.MemberIDs, members.ID{Value: c.cov.SubscriberID})
		}
	}
	if raw, ok := c.d.lookup("Patient/" + c.hc.PatientID); ok {
		var p struct {
			Identifier []struct {
				Type *struct {
					Coding []struct{ System, Code string } `json:"coding"`
				} `json:"type"`
				System string `json:"system"`
				Value  string `json:"value"`
			} `json:"identifier"`
			Name []struct {
				Use    string   `json:"use"`
				Family string   `json:"family"`
				Given  []string `json:"given"`
			} `json:"name"`
			BirthDate string `json:"birthDate"`
		}
		if unmarshal(raw, &p) == nil {
			for _, id := range p.Identifier {
				if id.Type != nil && id.Value != "" {
					for _, cd := range id.Type.Coding {
						if cd.Code == "MB" {
							q.MemberIDs = append(q.MemberIDs, members.ID{System: id.System, Value: id.Value})
						}
					}
				}
			}
			for _, n := range p.Name {
				if n.Use != "old" && n.Use != "maiden" && n.Family != "" {
					q.Family, q.Given = n.Family, n.Given
					break
				}
			}
			q.BirthDate = p.BirthDate
		}
	}
	q.Dates = []members.Span{{Start: c.now.Format(time.DateOnly)}}
	want := c.s.cfg.PayerIDs
	if len(want) == 0 {
		want = c.rules.Payers
	}
	q.Serves = func(system, value string) bool {
		return len(want) == 0 || servedBy([]coverage.PayerID{{System: system, Value: value}}, want)
	}
	res, err := c.s.cfg.Roster.Check(ctx, q)
	if err != nil {
		return err
	}
	if mode == members.Warn {
		if res.Status != members.Eligible {
			c.s.log.InfoContext(ctx, "cds hook: member not eligible on the roster (warn mode)", "hook_instance", c.req.HookInstance, "eligibility", string(res.Status))
		}
		return nil
	}
	c.roster = res
	return nil
}

// rosterProblem is the coverage outcome the roster gives ("" when the
// member is eligible or no roster is in force).
func (c *call) rosterProblem() (covered, reason, text string) {
	res := c.roster
	if res == nil {
		return "", "", ""
	}
	switch res.Status {
	case members.NotFound:
		return "not-covered", reasonNoMemberFound, "The patient is not on the payer's member roster."
	case members.Mismatch:
		d := res.Mismatches[0]
		return "not-covered", reasonNoMemberFound, fmt.Sprintf("The patient's %s does not match the payer's member on file, so no member could be matched.", map[string]string{"birthDate": "birth date", "name": "name"}[d.Field])
	case members.NoCoverage:
		if res.OtherPayer {
			return "not-covered", reasonCoverageNotFound, "The patient's coverage today is with another payer."
		}
		return "not-covered", reasonNoActiveCoverage, "The payer's roster shows no coverage in effect for the patient today."
	}
	return "", "", ""
}
