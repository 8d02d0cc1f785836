package coverage

// CRDAnswer is what CRD says about a service for an Outcome: the matched
// rule's CRD settings with defaults filled in where the rule, or the
// absence of one, is silent.
type CRDAnswer struct {
	// CRD is the rule's settings; Covered and PANeeded are always set.
	CRD
	// Reason says why, for people.
	Reason string
	// AuthorizationDays is how long an approval is valid.
	AuthorizationDays int
}

// CRDAnswer is out as CRD coverage information under r's defaults: unless
// the rule says otherwise, a denial is not-covered and anything else
// covered, an approval needs no prior authorization and anything else
// does; the reason is the rule's, or says that no policy names the
// service; approvals last the decision's days, else the default's.
func (r *Rules) CRDAnswer(out Outcome) CRDAnswer {
	var a CRDAnswer
	if out.Rule != nil {
		a.CRD = out.Rule.CRD
	}
	action := out.Decision.Action
	if a.Covered == "" {
		a.Covered = "covered"
		if action == Deny {
			a.Covered = "not-covered"
		}
	}
	if a.PANeeded == "" {
		a.PANeeded = "auth-needed"
		if action == Approve {
			a.PANeeded = "no-auth"
		}
	}
	a.Reason = out.Reason
	if out.Rule == nil {
		switch action {
		case Approve:
			a.Reason = "No coverage policy restricts this service; it is covered without prior authorization."
		case Deny:
			a.Reason = "No coverage policy covers this service under this plan."
		default:
			a.Reason = "No coverage policy names this service; the payer reviews it on a prior authorization request."
		}
	}
	if a.Reason == "" {
		a.Reason = "Decided by the payer's coverage policy."
	}
	a.AuthorizationDays = out.Decision.AuthorizationDays
	if a.AuthorizationDays == 0 {
		a.AuthorizationDays = r.Defaults.AuthorizationDays
	}
	return a
}
