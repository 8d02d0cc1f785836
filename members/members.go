// Package members keeps the payer's member roster — whom the payer covers,
// under which plan and when — and answers eligibility: does the member a
// prior-authorization request or a CRD call names exist, are they who the
// EHR says, and are they covered, by a payer this instance serves, on the
// dates of service. It imports rosters from FHIR (Patient + Coverage +
// payer Organization, as a Bundle or NDJSON) and knows nothing of HTTP.
package members

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/priora/priora/store"
)

// Mode is what eligibility does to requests (PRIORA_ELIGIBILITY).
type Mode string

const (
	// Auto enforces once the roster holds any member and is off while it
	// is empty, so demos and conformance kits run without a roster.
	Auto Mode = "auto"
	// Enforce answers requests for members who are not found, do not
	// match or are not covered with an error.
	Enforce Mode = "enforce"
	// Warn decides requests as if eligible but flags the eligibility
	// result to reviewers.
	Warn Mode = "warn"
	// Off checks nothing.
	Off Mode = "off"
)

// ParseMode reads a PRIORA_ELIGIBILITY value; "" is Auto.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return Auto, nil
	case Auto, Enforce, Warn, Off:
		return m, nil
	}
	return "", fmt.Errorf("eligibility %q must be auto, enforce, warn or off", s)
}

// Roster is the member roster over the store. It is safe for concurrent use.
type Roster struct {
	st   *store.Store
	mode Mode
	now  func() time.Time

	mu sync.Mutex
	// nonEmpty is sticky (members are never deleted); an empty answer is
	// trusted for emptyTTL, since another process (priora members import
	// beside a running server) may fill the roster.
	nonEmpty     bool
	emptyChecked time.Time

	importMu sync.Mutex // one import at a time in this process
}

const emptyTTL = 5 * time.Second

// New returns a roster in mode (Auto when "").
func New(st *store.Store, mode Mode, now func() time.Time) *Roster {
	if mode == "" {
		mode = Auto
	}
	if now == nil {
		now = time.Now
	}
	return &Roster{st: st, mode: mode, now: now}
}

// Mode is the configured mode.
func (r *Roster) Mode() Mode { return r.mode }

// Effective is the mode in force now: Auto becomes Enforce when the roster
// holds a member and Off while it is empty (a cached check).
func (r *Roster) Effective(ctx context.Context) (Mode, error) {
	if r == nil {
		return Off, nil
	}
	if r.mode != Auto {
		return r.mode, nil
	}
	r.mu.Lock()
	if r.nonEmpty {
		r.mu.Unlock()
		return Enforce, nil
	}
	fresh := !r.emptyChecked.IsZero() && r.now().Sub(r.emptyChecked) < emptyTTL
	r.mu.Unlock()
	if fresh {
		return Off, nil
	}
	empty, err := r.st.RosterEmpty(ctx)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !empty {
		r.nonEmpty = true
		return Enforce, nil
	}
	r.emptyChecked = r.now()
	return Off, nil
}

// invalidate drops the cached emptiness after an import.
func (r *Roster) invalidate() {
	r.mu.Lock()
	r.emptyChecked = time.Time{}
	r.mu.Unlock()
}

// ErrAmbiguous is a bare member id that several members have (in
// different systems).
var ErrAmbiguous = errors.New("members: ambiguous member id")

// Member loads a member by "system|value" id or by a bare member id value
// (when exactly one member has it).
func (r *Roster) Member(ctx context.Context, id string) (*store.Member, error) {
	if strings.Contains(id, "|") {
		return r.st.Member(ctx, id)
	}
	ms, err := r.st.MembersByValue(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(ms) != 1 {
		if len(ms) == 0 {
			return nil, store.ErrNotFound
		}
		return nil, fmt.Errorf("%w: %d members have id %q in different systems; give system|value", ErrAmbiguous, len(ms), id)
	}
	return ms[0], nil
}

// View is a small read-only view of a request's member for coverage
// policies (the %member variable of policy criteria) and the desk. Found
// is false when eligibility found no member; the coverage fields describe
// the coverage in effect on the (first) date of service, when any.
type View struct {
	Found        bool   `json:"found"`
	MemberID     string `json:"memberId,omitempty"`
	SubscriberID string `json:"subscriberId,omitempty"`
	Relationship string `json:"relationship,omitempty"`
	BirthDate    string `json:"birthDate,omitempty"`
	Gender       string `json:"gender,omitempty"`
	// Eligibility is the Status of the match (eligible, not-found, …).
	Eligibility   string `json:"eligibility,omitempty"`
	PayerID       string `json:"payerId,omitempty"`
	Plan          string `json:"plan,omitempty"`
	Group         string `json:"group,omitempty"`
	ProductLine   string `json:"productLine,omitempty"`
	Network       string `json:"network,omitempty"`
	CoverageStart string `json:"coverageStart,omitempty"`
	CoverageEnd   string `json:"coverageEnd,omitempty"`
}

// Age is the member's age in whole years on date (YYYY-MM-DD), or -1 when
// either date is unknown.
func (v View) Age(date string) int {
	b, err1 := time.Parse(time.DateOnly, v.BirthDate)
	d, err2 := time.Parse(time.DateOnly, firstDate(date))
	if err1 != nil || err2 != nil {
		return -1
	}
	age := d.Year() - b.Year()
	if d.Month() < b.Month() || d.Month() == b.Month() && d.Day() < b.Day() {
		age--
	}
	return age
}

func firstDate(s string) string {
	if len(s) >= 10 {
		return s[:10]
	}
	return s
}
