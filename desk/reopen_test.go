package desk_test

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/priora/priora/internal/testenv"
)

// At the desk: a request for information with the deadline extension puts
// the request in "Awaiting provider information"; the provider's update
// brings it back with the document marked New; after the decisions a nurse
// cannot reopen, a physician records an appeal with new information and
// overturns the denial; the metrics page counts the overturn.
func TestDeskInformationAndAppeal(t *testing.T) {
	e := start(t)
	original := pendedRequest(t, "appeal-1")
	r := e.Post(submitPath, original)
	if r.Status != http.StatusOK {
		t.Fatalf("submit: %d", r.Status)
	}
	id := testenv.AuthorizationID(t, r.Body)

	nurse := newBrowser(t, e)
	token := nurse.mustSignIn()
	if p := nurse.post("/desk/tasks/"+id+"/claim", url.Values{"csrf": {token}}); p.Status != http.StatusSeeOther {
		t.Fatalf("claim: %d", p.Status)
	}
	p := nurse.post("/desk/tasks/"+id+"/decision", url.Values{"csrf": {token}, "action-1": {"request-info"}, "codes-1": {"11506-3"},
		"extension-1": {"noncontract-evidence"}, "note-1": {"Send the progress note."}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("request for information: %d\n%.3000s", p.Status, p.Body)
	}
	page := nurse.get("/desk/tasks/" + id)
	if !strings.Contains(page.Body, "Awaiting provider information") || !strings.Contains(page.Body, "extended from") {
		t.Errorf("the request page does not show it awaiting the provider with the deadline extended")
	}
	if strings.Contains(page.Body, `id="extension-2"`) {
		t.Errorf("the extension is offered again after it was taken")
	}

	const text = "Imaging: bone-on-bone arthritis of the right knee."
	if r := e.Post(submitPath, testenv.InfoUpdate(t, original, "appeal-1-update", text)); r.Status != http.StatusOK {
		t.Fatalf("provider update: %d %s", r.Status, r.Body)
	}
	q := nurse.get("/desk/?assignee=mine")
	if !strings.Contains(q.Body, `href="/desk/tasks/`+id) || !strings.Contains(q.Body, "New information") || !strings.Contains(q.Body, "In review") {
		t.Errorf("the request is not back in the nurse's queue, in review, with new information")
	}
	page = nurse.get("/desk/tasks/" + id)
	if !strings.Contains(page.Body, text) {
		t.Errorf("the request page does not show the new document")
	}
	if strings.Count(page.Body, `class="badge new-mark"`) != 1 {
		t.Errorf("%d supporting entries marked New, want 1", strings.Count(page.Body, `class="badge new-mark"`))
	}
	if p := nurse.post("/desk/tasks/"+id+"/decision", url.Values{"csrf": {token}, "action-1": {"approve"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("approve: %d", p.Status)
	}
	doc := newBrowser(t, e)
	docToken := doc.mustSignInAs(physicianUser)
	if p := doc.post("/desk/tasks/"+id+"/decision", url.Values{"csrf": {docToken}, "action-2": {"deny"}, "reason-2": {"0U"}, "note-2": {"Not necessary."}}); p.Status != http.StatusSeeOther {
		t.Fatalf("deny: %d", p.Status)
	}

	// A nurse has no reopen form, and a forged post is refused.
	if page := nurse.get("/desk/tasks/" + id); strings.Contains(page.Body, `id="send-reopen"`) {
		t.Errorf("a nurse is offered to reopen")
	}
	form := url.Values{"csrf": {token}, "reopen-2": {"on"}, "kind": {"appeal"}, "from": {"provider"}, "reason": {"Provider appeal."}, "info": {"MRI report attached."}}
	if p := nurse.post("/desk/tasks/"+id+"/reopen", form); p.Status != http.StatusForbidden {
		t.Errorf("a nurse reopening: %d, want 403", p.Status)
	}
	form.Set("csrf", docToken)
	form.Set("reason", "")
	if p := doc.post("/desk/tasks/"+id+"/reopen", form); p.Status != http.StatusBadRequest {
		t.Errorf("reopening without a reason: %d, want 400", p.Status)
	}
	form.Set("reason", "Provider appeal.")
	if p := doc.post("/desk/tasks/"+id+"/reopen", form); p.Status != http.StatusSeeOther {
		t.Fatalf("physician's appeal: %d\n%.2000s", p.Status, p.Body)
	}
	page = doc.get("/desk/tasks/" + id)
	for _, want := range []string{"Reopened", "Appeal 1", "MRI report attached.", "reopened, was Denied"} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("the request page after the appeal lacks %q", want)
		}
	}
	if p := doc.post("/desk/tasks/"+id+"/decision", url.Values{"csrf": {docToken}, "action-2": {"approve"}, "note-2": {"Approved on appeal."}}); p.Status != http.StatusSeeOther {
		t.Fatalf("overturn: %d\n%.2000s", p.Status, p.Body)
	}
	a, err := e.App.Store.Authorization(context.Background(), "", id)
	if err != nil {
		t.Fatal(err)
	}
	if d := a.Items[1].Decision; d.Action != "approve" || d.Overturned != "deny" {
		t.Errorf("item 2 = %s (overturned %q), want approve overturning deny", d.Action, d.Overturned)
	}
	if m := doc.get("/desk/metrics"); !strings.Contains(m.Body, "Overturned on reconsideration or appeal") {
		t.Errorf("the metrics page has no overturn figure")
	}
}

// Information that arrived by fax is attached at the desk: the request
// waiting for it is back in the queue with the document marked New.
func TestDeskAttachInformation(t *testing.T) {
	e := start(t)
	id := submit(t, e, "attach-1")
	nurse := newBrowser(t, e)
	token := nurse.mustSignIn()
	if p := nurse.post("/desk/tasks/"+id+"/decision", url.Values{"csrf": {token}, "action-1": {"request-info"}, "codes-1": {"11506-3"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("request for information: %d", p.Status)
	}
	if p := nurse.post("/desk/tasks/"+id+"/documents", url.Values{"csrf": {token}, "info": {""}}); p.Status != http.StatusBadRequest {
		t.Errorf("attaching nothing: %d, want 400", p.Status)
	}
	if p := nurse.post("/desk/tasks/"+id+"/documents", url.Values{"csrf": {token}, "info": {"Faxed MRI report: tricompartmental arthritis."}, "how": {"fax"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("attach: %d\n%.2000s", p.Status, p.Body)
	}
	page := nurse.get("/desk/tasks/" + id)
	if !strings.Contains(page.Body, "Faxed MRI report") || !strings.Contains(page.Body, `<span class="badge new-mark">New</span> Document 1`) || !strings.Contains(page.Body, ">New<") {
		t.Errorf("the attached information is not on the page, marked New, with the request back to New")
	}
}

// TestDeskUploadDocument: a faxed PDF is attached as a file at the desk;
// the request page lists it, marked New, and serves it back as it came. A
// file of another type (HTML here) is refused.
func TestDeskUploadDocument(t *testing.T) {
	e := start(t)
	id := submit(t, e, "upload-1")
	nurse := newBrowser(t, e)
	token := nurse.mustSignIn()
	if p := nurse.post("/desk/tasks/"+id+"/decision", url.Values{"csrf": {token}, "action-1": {"request-info"}, "codes-1": {"11506-3"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("request for information: %d", p.Status)
	}
	upload := func(name string, content []byte) *page {
		var body bytes.Buffer
		w := multipart.NewWriter(&body)
		_ = w.WriteField("csrf", token)
		_ = w.WriteField("how", "fax")
		fw, _ := w.CreateFormFile("file", name)
		fw.Write(content)
		w.Close()
		req, _ := http.NewRequest(http.MethodPost, e.URL+"/desk/tasks/"+id+"/documents", &body)
		req.Header.Set("Content-Type", w.FormDataContentType())
		req.Header.Set("Origin", e.URL)
		resp, err := nurse.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return &page{Status: resp.StatusCode, Body: string(raw)}
	}
	if p := upload("note.html", []byte("<html><script>alert(1)</script></html>")); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "cannot be attached") {
		t.Errorf("an HTML upload: %d, want 400 saying so", p.Status)
	}
	pdf := []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
	if p := upload("fax-mri-report.pdf", pdf); p.Status != http.StatusSeeOther {
		t.Fatalf("upload: %d\n%.2000s", p.Status, p.Body)
	}
	task := nurse.get("/desk/tasks/" + id)
	if !strings.Contains(task.Body, "fax-mri-report.pdf") || !strings.Contains(task.Body, `<span class="badge new-mark">New</span> Document 1`) {
		t.Fatalf("the uploaded file is not listed, marked New:\n%.3000s", task.Body[strings.Index(task.Body, "attached-title"):])
	}
	link := regexp.MustCompile(`/desk/tasks/` + id + `/attached/[^"]+`).FindString(task.Body)
	if link == "" {
		t.Fatalf("no download link for the uploaded file")
	}
	got := nurse.get(link)
	if got.Status != http.StatusOK || got.Body != string(pdf) || !strings.HasPrefix(got.Header.Get("Content-Type"), "application/pdf") {
		t.Errorf("download: %d %q, %d bytes; want the PDF as uploaded", got.Status, got.Header.Get("Content-Type"), len(got.Body))
	}
}
