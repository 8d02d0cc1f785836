package pas

import (
	"encoding/json"
	"strings"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

// patientMatch is who a request or an inquiry is about, as $inquire
// compares them (PAS spec-53): member ids with their systems (the patient's
// own member identifiers and the Coverage's member number), the Coverage's
// subscriber ids, and the patient's name and birth date. A subscriber id is
// shared by a whole family, so it (and a member id equal to it) identifies
// the patient only together with the name and birth date.
func (r *request) patientMatch() store.PatientMatch {
	var m store.PatientMatch
	if p := r.party(r.patientEntry); p != nil {
		for _, id := range p.Identifier {
			switch {
			case isSubscriberNumber(id):
				m.SubscriberIDs = appendUnique(m.SubscriberIDs, id.Value)
			case isMemberID(id) && id.System != "":
				m.MemberIDs = appendUnique(m.MemberIDs, id.System+"|"+id.Value)
			}
		}
		m.Name, m.BirthDate = nameKey(p.Name), p.BirthDate
	}
	if cov := r.coverage; cov != nil {
		for _, id := range cov.Identifier {
			if c, ok := id.Type.Code(sysIdentifierType); ok && c.Code == "MB" && id.System != "" {
				m.MemberIDs = appendUnique(m.MemberIDs, id.System+"|"+id.Value)
			}
		}
		m.SubscriberIDs = appendUnique(m.SubscriberIDs, cov.SubscriberID)
	}
	// A member id that is the subscriber id (dependents filed under the
	// subscriber's number) names the family, not the patient.
	var own []string
	for _, k := range m.MemberIDs {
		if _, v, _ := strings.Cut(k, "|"); !contains(m.SubscriberIDs, v) {
			own = append(own, k)
		}
	}
	m.MemberIDs = own
	return m
}

func isSubscriberNumber(id fhir.Identifier) bool {
	c, ok := id.Type.Code(sysIdentifierType)
	return ok && c.Code == "SN"
}

// nameKey is a HumanName reduced for comparison: the upper-cased family
// name and first given name of the first name.
func nameKey(raw json.RawMessage) string {
	var names []struct {
		Family string   `json:"family"`
		Given  []string `json:"given"`
	}
	if json.Unmarshal(raw, &names) != nil || len(names) == 0 || names[0].Family == "" || len(names[0].Given) == 0 {
		return ""
	}
	return strings.ToUpper(strings.TrimSpace(names[0].Family)) + "|" + strings.ToUpper(strings.TrimSpace(names[0].Given[0]))
}

// samePatient reports whether an inquiry's patient q is the request's
// patient a: a member id with its system in common, or a subscriber id in
// common together with the same name and birth date. Differing birth dates
// never match.
func samePatient(q, a store.PatientMatch) bool {
	if q.BirthDate != "" && a.BirthDate != "" && q.BirthDate != a.BirthDate {
		return false
	}
	if overlap(q.MemberIDs, a.MemberIDs) {
		return true
	}
	return overlap(q.SubscriberIDs, a.SubscriberIDs) &&
		q.Name != "" && q.Name == a.Name && q.BirthDate != "" && q.BirthDate == a.BirthDate
}

// mergePatient adds an update's patient to the chain's: ids accumulate,
// the latest name and birth date win.
func mergePatient(have, add store.PatientMatch) store.PatientMatch {
	have.MemberIDs = appendUnique(have.MemberIDs, add.MemberIDs...)
	have.SubscriberIDs = appendUnique(have.SubscriberIDs, add.SubscriberIDs...)
	if add.Name != "" {
		have.Name = add.Name
	}
	if add.BirthDate != "" {
		have.BirthDate = add.BirthDate
	}
	return have
}
