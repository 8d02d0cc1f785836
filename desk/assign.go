package desk

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/store"
)

// assignView is the assignment part of a request page: who holds it, and
// what the signed-in reviewer may do about it.
type assignView struct {
	Name     string // the assignee's name ("" when unassigned)
	Mine     bool
	CanClaim bool
	// CanRelease: the assignee, a physician or an administrator.
	CanRelease bool
	// Reviewers are the accounts a physician or an administrator may
	// assign the request to (nil for a nurse).
	Reviewers []labelValue
}

// assignment fills the assignment part of a pended request's page.
func (d *Desk) assignment(r *http.Request, s *session, t *pas.TaskDetail) (assignView, error) {
	var v assignView
	if t.Status != "pended" {
		return v, nil
	}
	me := pas.AssigneeKey(s.reviewer())
	role := s.Role()
	if t.Assignee != nil {
		v.Name = assigneeLabel(t.Assignee)
		v.Mine = t.Assignee.Key == me
	}
	v.CanClaim = t.Assignee == nil && role != pas.RoleAdmin
	v.CanRelease = t.Assignee != nil && (v.Mine || role != pas.RoleNurse)
	if role == pas.RoleNurse {
		return v, nil
	}
	accounts, err := d.cfg.Store.Reviewers(r.Context())
	if err != nil {
		return v, err
	}
	for _, a := range accounts {
		if a.Disabled || pas.RoleOf(a.Role) == pas.RoleAdmin {
			continue
		}
		label := first(a.Name, a.Username) + " (" + pas.RoleOf(a.Role) + ")"
		v.Reviewers = append(v.Reviewers, labelValue{label, a.Username})
	}
	return v, nil
}

func assigneeLabel(a *store.Assignee) string {
	if a.Name != "" {
		return a.Name
	}
	return a.Key
}

// assign claims, releases or assigns a request from its page, then shows
// the page again (or the queue after a release).
func (d *Desk) assign(what string) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, s *session) error {
		id := r.PathValue("id")
		if !validID(id) {
			return fhir.Errorf(fhir.NotFound, "There is no such request.")
		}
		ctx := r.Context()
		var err error
		switch what {
		case "claim":
			_, err = d.cfg.PAS.Claim(ctx, "", id, s.reviewer())
		case "release":
			_, err = d.cfg.PAS.Release(ctx, "", id, s.reviewer())
		case "assign":
			username := r.PostForm.Get("assignee")
			acc, aerr := d.cfg.Store.Reviewer(ctx, normalizeUsername(username))
			if errors.Is(aerr, store.ErrNotFound) || (aerr == nil && acc.Disabled) {
				return fhir.Errorf(fhir.Invalid, "There is no such reviewer account.")
			}
			if aerr != nil {
				return aerr
			}
			to := (&session{Reviewer: acc}).reviewer()
			_, err = d.cfg.PAS.Assign(ctx, "", id, s.reviewer(), to)
		}
		var fe *fhir.Error
		if errors.As(err, &fe) && len(fe.Issues) > 0 {
			// Show the first reason in the reviewer's words.
			return &fhir.Error{Kind: fe.Kind, Message: fe.Issues[0].Diagnostics}
		}
		if err != nil {
			return err
		}
		d.log.InfoContext(ctx, "desk assignment", "authorization", id, "username", s.Reviewer.Username, "action", what)
		http.Redirect(w, r, "/desk/tasks/"+url.PathEscape(id)+"#assignment", http.StatusSeeOther)
		return nil
	}
}

// reopen reopens decided items for reconsideration, or records an appeal
// with the information that came with it (typed or pasted into the form,
// kept as a text document), through pas.Reopen.
func (d *Desk) reopen(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	if !validID(id) {
		return fhir.Errorf(fhir.NotFound, "There is no such request.")
	}
	t, err := d.cfg.PAS.Task(r.Context(), "", id)
	if err != nil {
		return err
	}
	f := r.PostForm
	rq := pas.ReopenRequest{Reviewer: s.reviewer(), Kind: f.Get("kind"), Reason: strings.TrimSpace(f.Get("reason")), From: f.Get("from")}
	for _, it := range t.Items {
		if f.Get("reopen-"+strconv.Itoa(it.Sequence)) != "" {
			rq.Items = append(rq.Items, it.Sequence)
		}
	}
	if info := strings.TrimSpace(f.Get("info")); info != "" {
		doc, err := textDocument("Information received with the "+first(rq.Kind, "appeal"), info)
		if err != nil {
			return err
		}
		rq.Documents = append(rq.Documents, doc)
	}
	_, err = d.cfg.PAS.Reopen(r.Context(), pas.Principal{Desk: s.Reviewer.Username}, "", id, rq)
	var fe *fhir.Error
	if errors.As(err, &fe) && len(fe.Issues) > 0 {
		return &fhir.Error{Kind: fe.Kind, Message: fe.Issues[0].Diagnostics}
	}
	if err != nil {
		return err
	}
	d.log.InfoContext(r.Context(), "desk reopening", "authorization", id, "username", s.Reviewer.Username, "kind", rq.Kind, "items", len(rq.Items))
	http.Redirect(w, r, "/desk/tasks/"+url.PathEscape(id), http.StatusSeeOther)
	return nil
}

// textDocument is information typed or pasted at the desk as a FHIR
// DocumentReference with a text attachment.
func textDocument(description, text string) ([]byte, error) {
	if len(text) > 64<<10 {
		return nil, fhir.Errorf(fhir.Invalid, "The information is longer than 64 KB; attach longer documents through the review API.")
	}
	return json.Marshal(map[string]any{
		"resourceType": "DocumentReference", "status": "current", "description": description,
		"content": []any{map[string]any{"attachment": map[string]any{
			"contentType": "text/plain; charset=utf-8", "title": "New information",
			"data": base64.StdEncoding.EncodeToString([]byte(text))}}},
	})
}

// maxUpload caps a document uploaded at the desk.
const maxUpload = 8 << 20

// uploadTypes are the file types the desk takes: what a fax server or a
// scanner produces, and plain text. Each is served back with the
// attachment's own sandboxing (task.go).
var uploadTypes = map[string]bool{"application/pdf": true, "image/png": true, "image/jpeg": true, "image/tiff": true, "text/plain": true}

// fileDocument is an uploaded file as a FHIR DocumentReference, its type
// told from its content (not the browser's claim) and checked against
// uploadTypes.
func fileDocument(fh *multipart.FileHeader) ([]byte, error) {
	f, err := fh.Open()
	if err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "The file could not be read.")
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxUpload+1))
	if err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "The file could not be read.")
	}
	if len(data) > maxUpload {
		return nil, fhir.Errorf(fhir.TooLarge, "The file is larger than %d MB; attach larger documents through the review API.", maxUpload>>20)
	}
	if len(data) == 0 {
		return nil, fhir.Errorf(fhir.Invalid, "The file is empty.")
	}
	mt, _, _ := mime.ParseMediaType(http.DetectContentType(data))
	if mt == "application/octet-stream" && (bytes.HasPrefix(data, []byte("II*\x00")) || bytes.HasPrefix(data, []byte("MM\x00*"))) {
		mt = "image/tiff" // DetectContentType does not know TIFF, the usual fax format
	}
	if !uploadTypes[mt] {
		return nil, fhir.Errorf(fhir.Invalid, "A %s file cannot be attached here: attach a PDF, PNG, JPEG or TIFF image, or plain text.", mt)
	}
	title := strings.TrimSpace(filepath.Base(fh.Filename))
	if title == "" || title == "." {
		title = "Uploaded document"
	}
	return json.Marshal(map[string]any{
		"resourceType": "DocumentReference", "status": "current", "description": "Information received outside PAS",
		"content": []any{map[string]any{"attachment": map[string]any{
			"contentType": mt, "title": title, "size": len(data),
			"data": base64.StdEncoding.EncodeToString(data)}}},
	})
}

// attach attaches information that reached the payer outside PAS (typed
// or pasted: a fax, a phone call) to a pended request, through pas.Attach.
func (d *Desk) attach(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	if !validID(id) {
		return fhir.Errorf(fhir.NotFound, "There is no such request.")
	}
	var docs []json.RawMessage
	if info := strings.TrimSpace(r.PostForm.Get("info")); info != "" {
		doc, err := textDocument("Information received outside PAS", info)
		if err != nil {
			return err
		}
		docs = append(docs, doc)
	}
	if r.MultipartForm != nil && len(r.MultipartForm.File["file"]) > 0 {
		doc, err := fileDocument(r.MultipartForm.File["file"][0])
		if err != nil {
			return err
		}
		docs = append(docs, doc)
	}
	if len(docs) == 0 {
		return fhir.Errorf(fhir.Invalid, "Type or paste the information that arrived, or choose its file.")
	}
	_, err := d.cfg.PAS.Attach(r.Context(), pas.Principal{Desk: s.Reviewer.Username}, "", id,
		pas.AttachRequest{Reviewer: s.reviewer(), Note: strings.TrimSpace(r.PostForm.Get("how")), Documents: docs})
	var fe *fhir.Error
	if errors.As(err, &fe) && len(fe.Issues) > 0 {
		return &fhir.Error{Kind: fe.Kind, Message: fe.Issues[0].Diagnostics}
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/desk/tasks/"+url.PathEscape(id)+"#attached", http.StatusSeeOther)
	return nil
}
