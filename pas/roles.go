package pas

import (
	"time"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

// Reviewer roles. A nurse approves, requests information and changes what
// is authorized without reducing it (or reduces it for a plan quantity
// limit, which is a benefit limit, not a medical-necessity finding); a
// physician also makes adverse medical-necessity determinations (denials
// and reductions) and reopens decided items; an administrator manages
// accounts and rules and makes no decisions. CMS requires adverse
// medical-necessity organization determinations to be reviewed by a
// physician (42 CFR 422.566(d)).
const (
	RoleNurse     = "nurse"
	RolePhysician = "physician"
	RoleAdmin     = "admin"
)

// Roles lists the roles in order of powers over decisions.
var Roles = []string{RoleNurse, RolePhysician, RoleAdmin}

// ValidRole reports whether r is a role.
func ValidRole(r string) bool { return r == RoleNurse || r == RolePhysician || r == RoleAdmin }

// RoleOf is the effective role of an account or a reviewer named through
// the review API: none counts as nurse, the role with the fewest powers
// over decisions.
func RoleOf(r string) string {
	if r == "" {
		return RoleNurse
	}
	return r
}

// planLimitReasonCodes are the shipped X12 reason codes under which a
// reduction is a plan benefit limit rather than a medical-necessity
// finding, so a nurse may make it (0P: quantity over the plan's limit).
var planLimitReasonCodes = map[string]bool{"0P": true}

// reduces reports whether a modify authorizes less than was requested:
// fewer units, or a shorter period inside the requested one.
func reduces(it ItemDecision, cur *store.Item) bool {
	if it.Quantity > 0 && cur.Quantity > 0 && it.Quantity < cur.Quantity {
		return true
	}
	if it.From != "" && cur.ServiceFrom != "" && cur.ServiceTo != "" {
		if days(it.From, it.To) < days(day(cur.ServiceFrom), day(cur.ServiceTo)) {
			return true
		}
	}
	return false
}

// days is the length of an inclusive date range, or -1 when unreadable.
func days(from, to string) int {
	f, err1 := time.Parse("2006-01-02", from)
	t, err2 := time.Parse("2006-01-02", to)
	if err1 != nil || err2 != nil {
		return -1
	}
	return int(t.Sub(f).Hours()/24) + 1
}

// checkRole adds a "forbidden" issue when role may not take the action.
func checkRole(is *issues, at, role string, it ItemDecision, cur *store.Item) {
	switch role {
	case RolePhysician:
		return
	case RoleNurse:
	case RoleAdmin:
		is.add("forbidden", at+".action", "an administrator account makes no decisions; sign in as a nurse or physician reviewer")
		return
	default:
		is.add("value", "reviewer.role", "role %q must be one of nurse, physician", role)
		return
	}
	switch {
	case it.Action == "deny":
		is.add("forbidden", at+".action", "a denial is an adverse medical-necessity determination and needs a physician reviewer (this reviewer is a %s)", role)
	case it.Action == "modify" && reduces(it, cur) && !planLimitReasonCodes[it.ReasonCode]:
		is.add("forbidden", at+".action", "authorizing less than was requested is an adverse medical-necessity determination and needs a physician reviewer (this reviewer is a %s); a reduction to a plan quantity limit (reason code 0P) a nurse may make", role)
	case it.Action == "reopen":
		is.add("forbidden", at+".action", "reopening a decided item needs a physician reviewer (this reviewer is a %s)", role)
	}
}

// issuesError is the error of a refused decision: 403 when the reviewer's
// role is what stops it, 409 for a conflict with the current state, 400
// otherwise.
func issuesError(is issues) error {
	if len(is) == 0 {
		return nil
	}
	kind := fhir.Invalid
	for _, i := range is {
		if i.Code == "conflict" && kind == fhir.Invalid {
			kind = fhir.Conflict
		}
		if i.Code == "forbidden" {
			kind = fhir.Forbidden
		}
	}
	return &fhir.Error{Kind: kind, Message: "the decision cannot be applied", Issues: is}
}

// roleSpecialty is the reviewerSpecialty of the PAS claimResponseReviewer
// extension for a role. Its binding (extensible) is the NUCC Health Care
// Provider Taxonomy (VSAC 2.16.840.1.114222.4.11.1066); the code set is
// free to use (https://taxonomy.nucc.org). A nurse is 163W00000X Registered
// Nurse; a physician's specialty is not known from the role alone, so it
// is carried as text.
func roleSpecialty(role string) *fhir.CodeableConcept {
	switch role {
	case RoleNurse:
		return &fhir.CodeableConcept{Coding: []fhir.Coding{{System: sysNUCC, Code: "163W00000X", Display: "Registered Nurse"}}, Text: "Nurse reviewer"}
	case RolePhysician:
		return &fhir.CodeableConcept{Text: "Physician reviewer"}
	}
	return nil
}

const sysNUCC = "http://nucc.org/provider-taxonomy"

// checkNotMore refuses a modify that authorizes more units than were
// requested, or dates outside the requested period (so a longer one).
func checkNotMore(is *issues, at string, it ItemDecision, cur *store.Item) {
	if it.Quantity > 0 && cur.Quantity > 0 && it.Quantity > cur.Quantity {
		is.add("value", at+".quantity", "a modification cannot authorize more than was requested (%g requested, %g given)", cur.Quantity, it.Quantity)
	}
	if it.From == "" || it.To == "" || cur.ServiceFrom == "" {
		return
	}
	from, to := day(cur.ServiceFrom), day(cur.ServiceTo)
	if to == "" {
		to = from
	}
	// Dates in YYYY-MM-DD compare as strings.
	if it.From < from || it.To > to {
		is.add("value", at+".to", "a modification cannot authorize a longer period than requested (%s to %s requested, %s to %s given)", from, to, it.From, it.To)
	}
	if it.To < it.From {
		is.add("value", at+".to", "the authorized period ends (%s) before it starts (%s)", it.To, it.From)
	}
}
