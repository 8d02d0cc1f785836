package coverage

import "testing"

func TestCRDAnswerDefaults(t *testing.T) {
	r := &Rules{Defaults: Defaults{AuthorizationDays: 180}}
	ruled := &Rule{CRD: CRD{Covered: "conditional", PANeeded: "performpa"}}
	for _, tt := range []struct {
		name                      string
		out                       Outcome
		covered, paNeeded, reason string
		days                      int
	}{
		{"no rule, approve", Outcome{Decision: Decision{Action: Approve}}, "covered", "no-auth", "No coverage policy restricts this service; it is covered without prior authorization.", 180},
		{"no rule, deny", Outcome{Decision: Decision{Action: Deny}}, "not-covered", "auth-needed", "No coverage policy covers this service under this plan.", 180},
		{"no rule, pend", Outcome{Decision: Decision{Action: Pend}}, "covered", "auth-needed", "No coverage policy names this service; the payer reviews it on a prior authorization request.", 180},
		{"rule silent on CRD", Outcome{Rule: &Rule{}, Decision: Decision{Action: Approve, AuthorizationDays: 30}}, "covered", "no-auth", "Decided by the payer's coverage policy.", 30},
		{"rule says", Outcome{Rule: ruled, Decision: Decision{Action: Deny}, Reason: "policy 7"}, "conditional", "performpa", "policy 7", 180},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := r.CRDAnswer(tt.out)
			if a.Covered != tt.covered || a.PANeeded != tt.paNeeded || a.Reason != tt.reason || a.AuthorizationDays != tt.days {
				t.Errorf("got %q %q %q %d, want %q %q %q %d", a.Covered, a.PANeeded, a.Reason, a.AuthorizationDays, tt.covered, tt.paNeeded, tt.reason, tt.days)
			}
		})
	}
}
