package desk

import (
	"cmp"
	"net/http"
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
	Tasks       []queueRow
	Columns     []sortColumn
	Overdue     int
	// Truncated is true when the queue holds more than the page shows.
	Truncated bool
	Flash     string
	Now       time.Time
}

type queueRow struct {
	pas.TaskSummary
	Age     string
	DueIn   string
	Service string
}

// eligibilityFilter is one choice of the queue's eligibility filter.
type eligibilityFilter struct {
	Value, Label, Href string
	Current            bool
}

var eligibilityFilters = []struct{ Value, Label string }{
	{"", "All"}, {"eligible", "Eligible"}, {"not-eligible", "Not eligible"}, {"unchecked", "Not checked"},
}

// eligibilityMatches applies the queue's eligibility filter to a task.
func eligibilityMatches(e *store.Eligibility, filter string) bool {
	switch filter {
	case "eligible":
		return e != nil && e.Status == "eligible"
	case "not-eligible":
		return e != nil && e.Status != "eligible"
	case "unchecked":
		return e == nil
	}
	return true
}

// sortColumn is a sortable header: its link and its aria-sort state.
type sortColumn struct {
	Key, Label, Href, AriaSort string
}

func (d *Desk) queuePage(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	data := &queuePageData{Title: "Work queue", Session: s, View: "pended", Sort: "age", Now: d.cfg.Now()}
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
	tasks, err := d.cfg.PAS.Queue(r.Context(), store.ReviewFilter{Status: data.View, Sort: "age", Limit: queueLimit, Test: data.Test})
	if err != nil {
		return err
	}
	data.Truncated = len(tasks) == queueLimit
	sortTasks(tasks, data.Sort, data.Desc)
	for _, t := range tasks {
		if !eligibilityMatches(t.Eligibility, data.Eligibility) {
			continue
		}
		row := queueRow{TaskSummary: t, Age: since(data.Now, t.Received), Service: strings.Join(slices.Compact(slices.Clone(t.Services)), ", ")}
		if data.View == "pended" {
			row.DueIn = until(data.Now, t.DueAt)
			if t.Overdue {
				data.Overdue++
			}
		}
		data.Tasks = append(data.Tasks, row)
	}
	for _, c := range queueSorts {
		col := sortColumn{Key: c.Key, Label: c.Label, AriaSort: "none"}
		desc := false
		if c.Key == data.Sort {
			col.AriaSort = map[bool]string{false: "ascending", true: "descending"}[data.Desc]
			desc = !data.Desc
		}
		col.Href = "/desk/?view=" + data.View + "&sort=" + c.Key
		if data.Test != "" {
			col.Href += "&test=" + data.Test
		}
		if desc {
			col.Href += "&dir=desc"
		}
		if data.Eligibility != "" {
			col.Href += "&eligibility=" + data.Eligibility
		}
		data.Columns = append(data.Columns, col)
	}
	for _, f := range eligibilityFilters {
		href := "/desk/?view=" + data.View + "&sort=" + data.Sort
		if data.Desc {
			href += "&dir=desc"
		}
		if data.Test != "" {
			href += "&test=" + data.Test
		}
		if f.Value != "" {
			href += "&eligibility=" + f.Value
		}
		data.Filters = append(data.Filters, eligibilityFilter{Value: f.Value, Label: f.Label, Href: href, Current: f.Value == data.Eligibility})
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
