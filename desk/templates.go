package desk

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/priora/priora/pas"
	"github.com/priora/priora/store"
)

// pageNames are the pages; each is parsed with layout.html.
var pageNames = []string{"login", "queue", "task", "metrics", "error"}

// errorPage is the page for anything that went wrong.
type errorPage struct {
	Title   string
	Session *session
	Message string
}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"when":       when,
		"percent":    percent,
		"hours":      hours,
		"monthLabel": monthLabel,
		"actions":    func() any { return itemActions },
		"join":       strings.Join,
		"decision":   decisionLabel,
		"num":        formatNumber,
		"f1":         func(f float64) string { return fmt.Sprintf("%.1f", f) },
		"chartArgs": func(id, title, desc string, c chart) any {
			return struct {
				ID, Title, Desc string
				Chart           chart
			}{id, title, desc, c}
		},
		"breakdownArgs": func(key string, rows []pas.Breakdown) any {
			return struct {
				Key  string
				Rows []pas.Breakdown
			}{key, rows}
		},
		"slice3": func(a, b, c partyView) []partyView { return []partyView{a, b, c} },
		"idify":  func(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "-")) },
		"diagnosisCode": func(dx []pas.TaskDiagnosis, seq int) string {
			for _, d := range dx {
				if d.Sequence == seq {
					return d.Code
				}
			}
			return "#" + strconv.Itoa(seq)
		},
		"stateLabel": func(st string) string { return first(stateLabels[st], st) },
		"outcomeLabel": func(o string) string {
			return first(map[string]string{"approved": "Approved", "partially-approved": "Partially approved", "denied": "Denied", "cancelled": "Cancelled"}[o], o)
		},
		"notifiedLabel": func(n string) string {
			return first(map[string]string{
				store.NotifiedNone: "Nothing to send", store.NotifiedPending: "Sending", store.NotifiedDelivered: "Delivered",
				store.NotifiedFailing: "Failing (retrying)", store.NotifiedNoSubscription: "No subscription",
			}[n], n)
		},
		"eligibilityLabel": func(status string) string {
			switch status {
			case "not-found":
				return "Member not found"
			case "mismatch":
				return "Demographics differ"
			case "no-coverage":
				return "No coverage in effect"
			}
			return status
		},
	}
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("desk: parse %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// when renders an instant for reviewers: UTC, to the minute.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// decisionLabel names an item decision's action for people.
func decisionLabel(action string) string {
	switch action {
	case "approve":
		return "Approved"
	case "deny":
		return "Denied"
	case "pend":
		return "Pended"
	case "modify":
		return "Approved with changes"
	case "cancel":
		return "Cancelled"
	}
	return action
}
