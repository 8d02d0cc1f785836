package members

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/priora/priora/store"
)

// Status is the outcome of an eligibility check.
type Status string

const (
	// Eligible: the member was found, matches, and is covered on every
	// date of service by a payer this instance serves.
	Eligible Status = "eligible"
	// NotFound: no member has the id, and no subscriber + relationship +
	// name + birth date match either.
	NotFound Status = "not-found"
	// Mismatch: the member was found by id, but the name or birth date
	// the request gives is not the member's.
	Mismatch Status = "mismatch"
	// NoCoverage: the member was found but has no coverage in effect, by
	// a payer this instance serves, on some date of service.
	NoCoverage Status = "no-coverage"
)

// ID is an identifier a request names the member by, with the FHIRPath
// where it sits.
type ID struct {
	System, Value, Path string
}

// Span is a date of service (Start, with End for a period), with the
// FHIRPath where it sits.
type Span struct {
	Start, End, Path string
}

// Query is what a request says about its member.
type Query struct {
	// MemberIDs, tried in order: Coverage.identifier of type MB,
	// Coverage.subscriberId when the patient is the subscriber, and
	// Patient.identifier of type MB.
	MemberIDs []ID
	// SubscriberID (Coverage.subscriberId) with Relationship
	// (Coverage.relationship), for a dependent without a member id.
	SubscriberID     string
	SubscriberIDPath string
	Relationship     string
	Family           string
	Given            []string
	NamePath         string
	BirthDate        string
	BirthDatePath    string
	// Dates are the dates of service; each must be covered.
	Dates []Span
	// Serves reports whether this instance serves a payer (nil: all).
	Serves func(system, value string) bool
}

// Difference is a demographic the request gives differently from the roster.
type Difference = store.Mismatch

// Result is the eligibility of a request's member.
type Result struct {
	Status Status
	// Member found (nil when NotFound).
	Member *store.Member
	// MatchedBy is "member-id" or "subscriber".
	MatchedBy string
	// Path is where the id the member was found by (or looked for) sits.
	Path string
	// SubscriberFound is true when NotFound but the subscriber exists
	// (a dependent not on file).
	SubscriberFound bool
	Mismatches      []Difference
	// Coverages[i] is the coverage in effect on Dates[i] (nil: none).
	Coverages []*store.MemberCoverage
	// Uncovered are the dates of service no served coverage covers.
	Uncovered []Span
	// OtherPayer is true when some uncovered date is covered by a payer
	// this instance does not serve.
	OtherPayer bool
	// Reason says in words what was found, for reviewers and notes.
	Reason string
}

// Coverage is the coverage in effect on the first date of service.
func (r *Result) Coverage() *store.MemberCoverage {
	for _, c := range r.Coverages {
		if c != nil {
			return c
		}
	}
	return nil
}

// Plan is the plan of the coverage in effect on date i ("" when none).
func (r *Result) Plan(i int) string {
	if r == nil || i >= len(r.Coverages) || r.Coverages[i] == nil {
		if c := r.Coverage(); r != nil && c != nil {
			return c.Plan
		}
		return ""
	}
	return r.Coverages[i].Plan
}

// ViewAt is the member view with the coverage in effect on date i.
func (r *Result) ViewAt(i int) View {
	v := r.View()
	if r != nil && i < len(r.Coverages) && r.Coverages[i] != nil {
		c := r.Coverages[i]
		v.PayerID, v.Plan, v.Group, v.ProductLine, v.Network = c.PayerID, c.Plan, c.Group, c.ProductLine, c.Network
		v.CoverageStart, v.CoverageEnd = c.Start, c.End
	}
	return v
}

// View is the read-only member view of the result.
func (r *Result) View() View {
	if r == nil || r.Member == nil {
		v := View{}
		if r != nil {
			v.Eligibility = string(r.Status)
		}
		return v
	}
	m := r.Member
	v := View{Found: true, MemberID: m.MemberID, SubscriberID: m.SubscriberID, Relationship: m.Relationship,
		BirthDate: m.BirthDate, Gender: m.Gender, Eligibility: string(r.Status)}
	if c := r.Coverage(); c != nil {
		v.PayerID, v.Plan, v.Group, v.ProductLine, v.Network = c.PayerID, c.Plan, c.Group, c.ProductLine, c.Network
		v.CoverageStart, v.CoverageEnd = c.Start, c.End
	}
	return v
}

// Check finds the request's member and checks its coverage.
func (r *Roster) Check(ctx context.Context, q Query) (*Result, error) {
	res := &Result{}
	// 1. By member id.
	for _, id := range q.MemberIDs {
		if id.Value == "" {
			continue
		}
		if res.Path == "" {
			res.Path = id.Path
		}
		var found []*store.Member
		if id.System != "" {
			m, err := r.st.Member(ctx, id.System+"|"+id.Value)
			if err == nil {
				found = append(found, m)
			} else if err != store.ErrNotFound {
				return nil, err
			}
		} else {
			ms, err := r.st.MembersByValue(ctx, id.Value)
			if err != nil {
				return nil, err
			}
			found = ms
		}
		if m := pick(found, q); m != nil {
			res.Member, res.MatchedBy, res.Path = m, "member-id", id.Path
			break
		}
	}
	// 2. By subscriber id + relationship + name + birth date.
	if res.Member == nil && q.SubscriberID != "" {
		ms, err := r.st.MembersBySubscriber(ctx, q.SubscriberID)
		if err != nil {
			return nil, err
		}
		res.SubscriberFound = len(ms) > 0
		for _, m := range ms {
			if q.Relationship != "" && m.Relationship != "" && q.Relationship != m.Relationship {
				continue
			}
			if q.BirthDate == "" || m.BirthDate != q.BirthDate || !sameName(q.Family, q.Given, m) {
				continue
			}
			res.Member, res.MatchedBy, res.Path = m, "subscriber", q.SubscriberIDPath
			break
		}
		if res.Path == "" {
			res.Path = q.SubscriberIDPath
		}
	}
	if res.Member == nil {
		res.Status = NotFound
		res.Reason = "No member on the payer's roster has the member id the request gives"
		if res.SubscriberFound {
			res.Reason = "The subscriber is on the payer's roster, but no dependent of theirs matches the patient's relationship, name and birth date"
		}
		return res, nil
	}
	m := res.Member
	// 3. Demographics: what the request gives must be the member's.
	if q.BirthDate != "" && m.BirthDate != "" && q.BirthDate != m.BirthDate {
		res.Mismatches = append(res.Mismatches, Difference{Field: "birthDate", Sent: q.BirthDate, OnFile: m.BirthDate, Path: q.BirthDatePath})
	}
	if q.Family != "" && !sameName(q.Family, q.Given, m) {
		res.Mismatches = append(res.Mismatches, Difference{Field: "name", Sent: nameString(q.Family, q.Given),
			OnFile: nameString(m.Family, m.Given), Path: q.NamePath})
	}
	// 4. Coverage in effect on each date of service.
	res.Coverages = make([]*store.MemberCoverage, len(q.Dates))
	for i, d := range q.Dates {
		c, other := inEffect(m, d.Start, q.Serves)
		res.Coverages[i] = c
		if c == nil {
			res.Uncovered = append(res.Uncovered, d)
			res.OtherPayer = res.OtherPayer || other
		}
	}
	switch {
	case len(res.Mismatches) > 0:
		res.Status = Mismatch
		var parts []string
		for _, d := range res.Mismatches {
			parts = append(parts, fmt.Sprintf("%s sent %q, on file %q", d.Field, d.Sent, d.OnFile))
		}
		res.Reason = "The member was found, but the request's demographics differ from the roster: " + strings.Join(parts, "; ")
	case len(res.Uncovered) > 0:
		res.Status = NoCoverage
		res.Reason = "The member has no coverage in effect on " + res.Uncovered[0].Start
		if res.OtherPayer {
			res.Reason += " with a payer this service answers for (their coverage on that date is with another payer)"
		}
	default:
		res.Status = Eligible
		res.Reason = "The member is on the payer's roster and covered on the dates of service"
	}
	return res, nil
}

// pick chooses among members found by one id value: the one whose birth
// date and name match, else the only one.
func pick(ms []*store.Member, q Query) *store.Member {
	if len(ms) == 1 {
		return ms[0]
	}
	for _, m := range ms {
		if m.BirthDate == q.BirthDate && sameName(q.Family, q.Given, m) {
			return m
		}
	}
	return nil
}

// inEffect is the member's active coverage covering date from a served
// payer; other reports an active coverage on that date from another payer.
func inEffect(m *store.Member, date string, serves func(system, value string) bool) (c *store.MemberCoverage, other bool) {
	date = firstDate(date)
	for i := range m.Coverages {
		cv := &m.Coverages[i]
		if cv.Status != "active" || date == "" {
			continue
		}
		if cv.Start != "" && date < cv.Start || cv.End != "" && date > cv.End {
			continue
		}
		if serves != nil && !serves(cv.PayerSystem, cv.PayerID) {
			other = true
			continue
		}
		return cv, false
	}
	return nil, other
}

// sameName compares family names and the first given name, ignoring case,
// spaces and punctuation. A given name the request omits is not compared.
func sameName(family string, given []string, m *store.Member) bool {
	if fold(family) != fold(m.Family) {
		return false
	}
	if len(given) == 0 || len(m.Given) == 0 {
		return true
	}
	return fold(given[0]) == fold(m.Given[0])
}

func fold(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToUpper(r))
		}
	}
	return b.String()
}

func nameString(family string, given []string) string {
	return strings.TrimSpace(strings.Join(append(append([]string(nil), given...), family), " "))
}

// Record is the result as kept on a request chain; flagged marks it for
// reviewers (warn mode).
func (r *Result) Record(mode Mode) *store.Eligibility {
	e := &store.Eligibility{Mode: string(mode), Status: string(r.Status), MatchedBy: r.MatchedBy,
		Mismatches: r.Mismatches, Reason: r.Reason, Flagged: mode == Warn && r.Status != Eligible}
	if m := r.Member; m != nil {
		e.MemberID, e.Relationship, e.BirthDate = m.MemberID, m.Relationship, m.BirthDate
		e.Name = nameString(m.Family, m.Given)
	}
	if c := r.Coverage(); c != nil {
		e.Payer = strings.TrimPrefix(c.PayerSystem+"|"+c.PayerID, "|")
		if c.PayerName != "" {
			e.Payer = c.PayerName + " (" + e.Payer + ")"
		}
		e.Plan, e.PlanName, e.Group, e.ProductLine, e.Network = c.Plan, c.PlanName, c.Group, c.ProductLine, c.Network
		e.Start, e.End = c.Start, c.End
	}
	return e
}
