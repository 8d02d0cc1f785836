package desk

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/store"
)

// queueLimit is the most requests one queue page lists (oldest first
// before sorting), the review store's own cap.
const queueLimit = 500

// queueSorts are the queue's sort keys, each with the order it starts in.
var queueSorts = []struct{ Key, Label string }{
	{"age", "Received"},
	{"due", "Due"},
	{"urgency", "Urgency"},
	{"service", "Service"},
}

// queuePageData is the work queue.
type queuePageData struct {
	Title   string
	Session *session
	// View is pended (the default: work to do) or complete (decided).
	View string
	Sort string
	Desc bool
	// Test is "include" when test data (HTEST) is listed too.
	Test string
	// Eligibility filters the queue: "" (all), eligible, not-eligible
	// (not found, mismatch or no coverage) or unchecked.
	Eligibility string
	Filters     []eligibilityFilter
	// Search holds the search and filter form's values.
	Search  queueSearch
	States  []labelValue
	Tasks   []queueRow
	Columns []sortColumn
	Overdue int
	// Truncated is true when the queue holds more than the page shows.
	Truncated bool
	Flash     string
	Now       time.Time
	// Mine is the signed-in reviewer's assignee key.
	Mine string
}

// queueSearch is the queue's search form: what the reviewer typed and chose.
type queueSearch struct {
	Patient, Member, NPI, Code, State, Priority, Assignee string
	Overdue                                               bool
	// Active is true when any of them narrows the queue.
	Active bool
}

type queueRow struct {
	pas.TaskSummary
	Age     string
	DueIn   string
	Service string
	// AssigneeName is who works the request ("You" for the signed-in reviewer).
	AssigneeName string
}

// stateLabels name the review states for people.
var stateLabels = map[string]string{
	pas.StateNew: "New", pas.StateInReview: "In review", pas.StateAwaitingInfo: "Awaiting provider information",
	pas.StateReopened: "Reopened", pas.StateDecided: "Decided", pas.StateCancelled: "Cancelled",
}

// eligibilityFilter is one choice of the queue's eligibility filter.
type eligibilityFilter struct {
	Value, Label, Href string
	Current            bool
}

var eligibilityFilters = []struct{ Value, Label string }{
	{"", "All"}, {"eligible", "Eligible"}, {"not-eligible", "Not eligible"}, {"unchecked", "Not checked"},
}

// sortColumn is a sortable header: its link and its aria-sort state.
type sortColumn struct {
	Key, Label, Href, AriaSort string
}

// readSearch reads and checks the search form. Free text is bounded and
// compared exactly (member id, NPI, code) or as a part of the name, never
// as a pattern.
func readSearch(q url.Values, s *session) (queueSearch, store.ReviewFilter, error) {
	var qs queueSearch
	var f store.ReviewFilter
	qs.Patient, qs.Member = strings.TrimSpace(q.Get("patient")), strings.TrimSpace(q.Get("member"))
	qs.NPI, qs.Code = strings.TrimSpace(q.Get("npi")), strings.TrimSpace(q.Get("code"))
	qs.State, qs.Priority, qs.Assignee = q.Get("state"), q.Get("priority"), q.Get("assignee")
	qs.Overdue = q.Get("overdue") == "true"
	for _, v := range []string{qs.Patient, qs.Member, qs.NPI, qs.Code} {
		if len(v) > 100 {
			return qs, f, fhir.Errorf(fhir.Invalid, "A search term is longer than 100 characters.")
		}
	}
	if qs.NPI != "" && !fhir.IsNPI(qs.NPI) {
		return qs, f, fhir.Errorf(fhir.Invalid, "An NPI has 10 digits and a valid check digit.")
	}
	f.Patient, f.MemberID, f.NPI, f.Code, f.Overdue = qs.Patient, qs.Member, qs.NPI, qs.Code, qs.Overdue
	if qs.State != "" {
		if _, ok := stateLabels[qs.State]; !ok {
			return qs, f, fhir.Errorf(fhir.Invalid, "There is no such review state.")
		}
		f.State = qs.State
	}
	switch qs.Priority {
	case "":
	case "expedited", "standard":
		e := qs.Priority == "expedited"
		f.Expedited = &e
	default:
		return qs, f, fhir.Errorf(fhir.Invalid, "Priority is expedited or standard.")
	}
	switch qs.Assignee {
	case "", "unassigned", "assigned":
		f.Assignee = qs.Assignee
	case "mine":
		f.Assignee = pas.AssigneeKey(s.reviewer())
	default:
		return qs, f, fhir.Errorf(fhir.Invalid, "The queue cannot be filtered by that assignee.")
	}
	qs.Active = qs.Patient != "" || qs.Member != "" || qs.NPI != "" || qs.Code != "" || qs.State != "" || qs.Priority != "" || qs.Assignee != "" || qs.Overdue
	return qs, f, nil
}

// query is the search as URL parameters (for sort and filter links).
func (qs queueSearch) query(v url.Values) {
	for k, val := range map[string]string{"patient": qs.Patient, "member": qs.Member, "npi": qs.NPI, "code": qs.Code,
		"state": qs.State, "priority": qs.Priority, "assignee": qs.Assignee} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if qs.Overdue {
		v.Set("overdue", "true")
	}
}

func (d *Desk) queuePage(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	data := &queuePageData{Title: "Work queue", Session: s, View: "pended", Sort: "age", Now: d.cfg.Now(), Mine: pas.AssigneeKey(s.reviewer())}
	switch v := q.Get("view"); v {
	case "", "pended":
	case "complete":
		data.View, data.Sort, data.Desc = v, "age", true
	default:
		return fhir.Errorf(fhir.Invalid, "There is no such view of the queue.")
	}
	if k := q.Get("sort"); k != "" {
		if !slices.ContainsFunc(queueSorts, func(c struct{ Key, Label string }) bool { return c.Key == k }) {
			return fhir.Errorf(fhir.Invalid, "The queue cannot be sorted that way.")
		}
		data.Sort = k
		data.Desc = q.Get("dir") == "desc"
	}
	data.Eligibility = q.Get("eligibility")
	if !slices.ContainsFunc(eligibilityFilters, func(f struct{ Value, Label string }) bool { return f.Value == data.Eligibility }) {
		return fhir.Errorf(fhir.Invalid, "The queue cannot be filtered that way.")
	}
	switch data.Test = q.Get("test"); data.Test {
	case "", "include":
	default:
		return fhir.Errorf(fhir.Invalid, "The queue shows test data with test=include, or leaves it out.")
	}
	search, filter, err := readSearch(q, s)
	if err != nil {
		return err
	}
	data.Search = search
	for _, st := range pas.States {
		data.States = append(data.States, labelValue{stateLabels[st], st})
	}
	filter.Status, filter.Sort, filter.Limit, filter.Test, filter.Eligibility = data.View, "age", queueLimit, data.Test, data.Eligibility
	tasks, err := d.cfg.PAS.Queue(r.Context(), filter)
	if err != nil {
		return err
	}
	data.Truncated = len(tasks) == queueLimit
	sortTasks(tasks, data.Sort, data.Desc)
	for _, t := range tasks {
		row := queueRow{TaskSummary: t, Age: since(data.Now, t.Received), Service: strings.Join(slices.Compact(slices.Clone(t.Services)), ", ")}
		if t.Assignee != nil {
			row.AssigneeName = t.Assignee.Name
			if t.Assignee.Key == data.Mine {
				row.AssigneeName = "You"
			}
		}
		if data.View == "pended" {
			row.DueIn = until(data.Now, t.DueAt)
			if t.Overdue {
				data.Overdue++
			}
		}
		data.Tasks = append(data.Tasks, row)
	}
	link := func(sort string, desc bool, eligibility string) string {
		v := url.Values{"view": {data.View}, "sort": {sort}}
		if data.Test != "" {
			v.Set("test", data.Test)
		}
		if desc {
			v.Set("dir", "desc")
		}
		if eligibility != "" {
			v.Set("eligibility", eligibility)
		}
		search.query(v)
		return "/desk/?" + v.Encode()
	}
	for _, c := range queueSorts {
		col := sortColumn{Key: c.Key, Label: c.Label, AriaSort: "none"}
		desc := false
		if c.Key == data.Sort {
			col.AriaSort = map[bool]string{false: "ascending", true: "descending"}[data.Desc]
			desc = !data.Desc
		}
		col.Href = link(c.Key, desc, data.Eligibility)
		data.Columns = append(data.Columns, col)
	}
	for _, f := range eligibilityFilters {
		data.Filters = append(data.Filters, eligibilityFilter{Value: f.Value, Label: f.Label, Href: link(data.Sort, data.Desc, f.Value), Current: f.Value == data.Eligibility})
	}
	if id := q.Get("decided"); id != "" && validID(id) {
		data.Flash = "Your decision on " + id + " was recorded and sent to the provider."
	}
	d.render(w, r, http.StatusOK, "queue", data)
	return nil
}

// sortTasks orders the queue. Ascending age is oldest first; urgency puts
// expedited requests first; every order breaks ties by due time, then id.
func sortTasks(ts []pas.TaskSummary, key string, desc bool) {
	slices.SortStableFunc(ts, func(a, b pas.TaskSummary) int {
		var c int
		switch key {
		case "age":
			c = a.Received.Compare(b.Received)
		case "due":
			c = a.DueAt.Compare(b.DueAt)
		case "urgency":
			c = -cmp.Compare(boolInt(a.Expedited), boolInt(b.Expedited))
		case "service":
			c = cmp.Compare(strings.ToLower(strings.Join(a.Services, ",")), strings.ToLower(strings.Join(b.Services, ",")))
		}
		if desc {
			c = -c
		}
		if c == 0 {
			c = a.DueAt.Compare(b.DueAt)
		}
		if c == 0 {
			c = cmp.Compare(a.ID, b.ID)
		}
		return c
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// since says how long ago t was, coarsely ("3 h", "2 d").
func since(now, t time.Time) string { return span(now.Sub(t)) + " ago" }

// until says how long until t ("in 5 h"), or how long past it ("5 h").
func until(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	if d := t.Sub(now); d >= 0 {
		return "in " + span(d)
	}
	return span(now.Sub(t))
}

func span(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "under a minute"
	case d < time.Hour:
		return itoa(int(d.Minutes())) + " min"
	case d < 48*time.Hour:
		return itoa(int(d.Hours())) + " h"
	}
	return itoa(int(d.Hours()/24)) + " d"
}
