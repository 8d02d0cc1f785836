package desk

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/pas"
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-\.]{1,64}$`)

// validID reports whether s can be a request id; nothing else reaches the store.
func validID(s string) bool { return idPattern.MatchString(s) }

// taskPageData is one request with its decision form.
type taskPageData struct {
	Title   string
	Session *session
	Task    *pas.TaskDetail
	Age     string
	DueIn   string
	requestParties
	Items      []itemView
	Pended     int
	Supporting []supportView
	Diagnoses  []pas.TaskDiagnosis
	// Errors are what stopped the last decision, shown above the form.
	Errors []formError
	// Assign is who holds the request and what this reviewer may do.
	Assign assignView
	// Reopenable are the decided items a physician may reopen (none for
	// other roles); Appeals the reconsiderations and appeals so far.
	Reopenable []itemView
	Appeals    []appealView
	// Attached are documents the payer's staff attached.
	Attached []attachedView
	// Extensions are the reasons a deadline extension may be taken for
	// (empty once it was taken).
	Extensions []labelValue
}

// attachedView is one document attached by the payer's staff.
type attachedView struct {
	pas.AttachedInfo
	Doc supportView
}

// appealView is one reconsideration or appeal as shown.
type appealView struct {
	pas.AppealInfo
	Documents []supportView
}

// formError points at the field a problem is about.
type formError struct {
	Field   string // element id, for the error summary's link
	Message string
}

// itemView is one item with its history and, when pended, its form state.
type itemView struct {
	pas.TaskItem
	Quantity string
	Dates    string
	Pended   bool
	// Form state of a pended item (what the reviewer last entered).
	Action, Reason, Note, AuthQuantity, From, To, Codes string
	// Internal is the note for the payer's staff, never sent to the provider.
	Internal string
	Error    string
}

// Actions a reviewer can take on a pended item, in form order.
var itemActions = []struct{ Value, Label string }{
	{"", "Leave pended"},
	{"approve", "Approve"},
	{"deny", "Deny"},
	{"modify", "Approve with changes (units or dates)"},
	{"request-info", "Request more information"},
}

func (d *Desk) taskPage(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	if !validID(id) {
		return fhir.Errorf(fhir.NotFound, "There is no such request.")
	}
	data, err := d.loadTask(r, s, id)
	if err != nil {
		return err
	}
	d.render(w, r, http.StatusOK, "task", data)
	return nil
}

func (d *Desk) loadTask(r *http.Request, s *session, id string) (*taskPageData, error) {
	t, err := d.cfg.PAS.Task(r.Context(), "", id)
	if err != nil {
		return nil, err
	}
	now := d.cfg.Now()
	data := &taskPageData{Title: "Request " + t.ID, Session: s, Task: t, Age: since(now, t.Received),
		requestParties: parties(t.Request), Supporting: supportViews(t.ID, t.SupportingInfo, claimSupporting(t.Request)),
		Diagnoses: t.Diagnoses}
	if t.Status == "pended" {
		data.DueIn = until(now, t.DueAt)
	}
	if data.Assign, err = d.assignment(r, s, t); err != nil {
		return nil, err
	}
	for _, it := range t.Items {
		v := itemView{TaskItem: it, Dates: dateRange(it.ServiceFrom, it.ServiceTo), Pended: it.Decision.Action == "pend"}
		if it.Quantity > 0 {
			v.Quantity = strings.TrimSpace(formatNumber(it.Quantity) + " " + it.Unit)
		}
		if v.Pended {
			data.Pended++
		}
		data.Items = append(data.Items, v)
		if s.Role() == pas.RolePhysician && (it.Decision.Action == "approve" || it.Decision.Action == "deny" || it.Decision.Action == "modify") {
			data.Reopenable = append(data.Reopenable, v)
		}
	}
	for _, ap := range t.Appeals {
		av := appealView{AppealInfo: ap}
		var infos []pas.SupportingInfo
		for i, doc := range ap.Documents {
			infos = append(infos, pas.SupportingInfo{Sequence: i + 1, Type: "DocumentReference", Resource: doc})
		}
		av.Documents = supportViews(t.ID, infos, nil)
		for i := range av.Documents {
			// Appeal documents are shown in the page, not downloaded by
			// supporting-information number.
			for k := range av.Documents[i].Attachments {
				av.Documents[i].Attachments[k].Href = ""
				av.Documents[i].Attachments[k].Image = false
			}
		}
		data.Appeals = append(data.Appeals, av)
	}
	for _, at := range t.Attached {
		v := supportViews(t.ID, []pas.SupportingInfo{{Sequence: at.Number, Type: "DocumentReference", Resource: at.Document}}, nil)[0]
		for k := range v.Attachments {
			// Served by number of the attached document (attachedFile).
			if v.Attachments[k].Href != "" {
				v.Attachments[k].Href = fmt.Sprintf("/desk/tasks/%s/attached/%d/%d", t.ID, at.Number, k)
			}
			v.Attachments[k].Image = false
		}
		data.Attached = append(data.Attached, attachedView{AttachedInfo: at, Doc: v})
	}
	if t.ExtendedFrom.IsZero() {
		for _, r := range pas.ExtensionReasons() {
			data.Extensions = append(data.Extensions, labelValue{r[1], r[0]})
		}
	}
	return data, nil
}

// decide applies the reviewer's per-item decisions through pas.Decide: one
// new response version and its notification event. On a mistake in the
// form, the page comes back with the reviewer's entries and what to fix.
func (d *Desk) decide(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	if !validID(id) {
		return fhir.Errorf(fhir.NotFound, "There is no such request.")
	}
	data, err := d.loadTask(r, s, id)
	if err != nil {
		return err
	}
	if data.Pended == 0 {
		data.Errors = append(data.Errors, formError{"items-title", "Nothing in this request awaits a decision any more: it was decided meanwhile."})
		d.render(w, r, http.StatusConflict, "task", data)
		return nil
	}
	decision := pas.ReviewDecision{Reviewer: s.reviewer()}
	var order []int // data.Items index of each decided item, in decision order
	for i := range data.Items {
		v := &data.Items[i]
		if !v.Pended {
			continue
		}
		seq := strconv.Itoa(v.Sequence)
		f := r.PostForm
		v.Action, v.Reason, v.Note = f.Get("action-"+seq), strings.TrimSpace(f.Get("reason-"+seq)), strings.TrimSpace(f.Get("note-"+seq))
		v.AuthQuantity, v.From, v.To = strings.TrimSpace(f.Get("quantity-"+seq)), f.Get("from-"+seq), f.Get("to-"+seq)
		v.Codes = strings.TrimSpace(f.Get("codes-" + seq))
		v.Internal = strings.TrimSpace(f.Get("internal-" + seq))
		if v.Action == "" {
			continue
		}
		it := pas.ItemDecision{Sequence: v.Sequence, Action: v.Action, Note: v.Note, InternalNote: v.Internal}
		switch v.Action {
		case "approve":
		case "deny":
			it.ReasonCode = v.Reason
		case "modify":
			if v.AuthQuantity != "" {
				q, err := strconv.ParseFloat(v.AuthQuantity, 64)
				if err != nil || q <= 0 {
					v.Error = "The authorized units must be a number above zero."
					data.Errors = append(data.Errors, formError{"quantity-" + seq, fmt.Sprintf("Item %d: %s", v.Sequence, v.Error)})
					continue
				}
				it.Quantity = q
			}
			it.From, it.To = v.From, v.To
		case "request-info":
			it.Codes = strings.FieldsFunc(v.Codes, func(c rune) bool { return c == ',' || c == ' ' || c == ';' })
			it.Extension = f.Get("extension-" + seq)
		default:
			return fhir.Errorf(fhir.Invalid, "That decision is not one the desk offers.")
		}
		if len(it.Note) > 2000 || len(it.InternalNote) > 2000 {
			v.Error = "The note is longer than 2,000 characters."
			data.Errors = append(data.Errors, formError{"note-" + seq, fmt.Sprintf("Item %d: %s", v.Sequence, v.Error)})
			continue
		}
		decision.Items = append(decision.Items, it)
		order = append(order, i)
	}
	if len(data.Errors) == 0 && len(decision.Items) == 0 {
		data.Errors = append(data.Errors, formError{"decision", "Choose a decision for at least one item."})
	}
	if len(data.Errors) > 0 {
		d.render(w, r, http.StatusUnprocessableEntity, "task", data)
		return nil
	}
	ans, err := d.cfg.PAS.Decide(r.Context(), pas.Principal{Desk: s.Reviewer.Username}, "", id, decision)
	var fe *fhir.Error
	if errors.As(err, &fe) && (fe.Kind == fhir.Invalid || fe.Kind == fhir.Conflict || fe.Kind == fhir.Forbidden) {
		status := http.StatusUnprocessableEntity
		if fe.Kind == fhir.Forbidden {
			status = http.StatusForbidden
		}
		if fe.Kind == fhir.Conflict {
			status = http.StatusConflict
			data.Errors = append(data.Errors, formError{"decision", "Someone else has decided part of this request meanwhile; the page now shows the current state."})
			if fresh, err := d.loadTask(r, s, id); err == nil {
				fresh.Errors = data.Errors
				data = fresh
			}
		}
		for _, is := range fe.Issues {
			if fe.Kind == fhir.Conflict {
				break
			}
			data.Errors = append(data.Errors, issueError(is, data, order))
		}
		d.render(w, r, status, "task", data)
		return nil
	}
	if err != nil {
		return err
	}
	d.log.InfoContext(r.Context(), "desk decision", "authorization", ans.Authorization,
		"username", s.Reviewer.Username, "items", len(decision.Items), "outcome", ans.Outcome)
	http.Redirect(w, r, "/desk/?decided="+url.QueryEscape(id), http.StatusSeeOther)
	return nil
}

var issueItem = regexp.MustCompile(`^items\[(\d+)\](?:\.(\w+))?`)

// issueError turns an issue of pas.Decide (expression items[i].field) into
// a message about the item on the page, and marks the item.
func issueError(is fhir.Issue, data *taskPageData, order []int) formError {
	m := issueItem.FindStringSubmatch(is.Expression)
	if m == nil {
		return formError{"decision", is.Diagnostics}
	}
	i, _ := strconv.Atoi(m[1])
	if i >= len(order) {
		return formError{"decision", is.Diagnostics}
	}
	v := &data.Items[order[i]]
	v.Error = is.Diagnostics
	field := map[string]string{"reasonCode": "reason", "quantity": "quantity", "to": "to", "codes": "codes"}[m[2]]
	if field == "" {
		field = "action"
	}
	return formError{fmt.Sprintf("%s-%d", field, v.Sequence), fmt.Sprintf("Item %d: %s", v.Sequence, is.Diagnostics)}
}

// safeInline are the attachment types a browser may show in place; any
// other type is sent as a download of opaque bytes.
var safeInline = map[string]bool{"text/plain": true, "application/pdf": true, "image/png": true, "image/jpeg": true, "image/gif": true}

// attachment sends a DocumentReference attachment carried in the request.
// It is sandboxed (CSP sandbox, nosniff), so that a document cannot run
// script in the desk's origin whatever its declared type.
func (d *Desk) attachment(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	seq, err1 := strconv.Atoi(r.PathValue("seq"))
	n, err2 := strconv.Atoi(r.PathValue("n"))
	if !validID(id) || err1 != nil || err2 != nil {
		return fhir.Errorf(fhir.NotFound, "There is no such attachment.")
	}
	t, err := d.cfg.PAS.Task(r.Context(), "", id)
	if err != nil {
		return err
	}
	data, ct, title, ok := decodeAttachment(t, seq, n)
	if !ok {
		return fhir.Errorf(fhir.NotFound, "There is no such attachment.")
	}
	serveAttachment(w, data, ct, title, seq, n)
	return nil
}

// attachedFile serves an attachment of a document the payer's staff
// attached (by the document's number on the request).
func (d *Desk) attachedFile(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	num, err1 := strconv.Atoi(r.PathValue("num"))
	n, err2 := strconv.Atoi(r.PathValue("n"))
	if !validID(id) || err1 != nil || err2 != nil {
		return fhir.Errorf(fhir.NotFound, "There is no such attachment.")
	}
	t, err := d.cfg.PAS.Task(r.Context(), "", id)
	if err != nil {
		return err
	}
	for _, at := range t.Attached {
		if at.Number != num {
			continue
		}
		if data, ct, title, ok := documentAttachment(at.Document, n); ok {
			serveAttachment(w, data, ct, title, num, n)
			return nil
		}
	}
	return fhir.Errorf(fhir.NotFound, "There is no such attachment.")
}

// serveAttachment writes an attachment's bytes: inline only for the types
// that are safe to show, always sandboxed.
func serveAttachment(w http.ResponseWriter, data []byte, ct, title string, seq, n int) {
	mt := mediaType(ct)
	disposition := "inline"
	if !safeInline[mt] {
		mt, disposition = "application/octet-stream", "attachment"
	}
	if mt == "text/plain" {
		mt = "text/plain; charset=utf-8"
	}
	h := w.Header()
	h.Set("Content-Type", mt)
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'")
	h.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": fileName(title, seq, n)}))
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._ -]+`)

func fileName(title string, seq, n int) string {
	name := strings.TrimSpace(unsafeFileChars.ReplaceAllString(title, "_"))
	if len(name) > 80 {
		name = name[:80]
	}
	if name == "" || strings.Trim(name, "._ ") == "" {
		name = fmt.Sprintf("attachment-%d-%d", seq, n+1)
	}
	return name
}
