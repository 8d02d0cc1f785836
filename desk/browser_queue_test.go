package desk_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"github.com/priora/priora/internal/testenv"
)

// TestQueueFlowInBrowser is the work queue end to end in a real browser: a
// nurse finds a request with the search form, takes it, asks the provider
// for a document with the deadline extension; the provider's update brings
// it back to her queue with the document marked New; she approves one item,
// a physician denies the other, then records the provider's appeal and
// overturns the denial. The EHR receives the new response through its
// subscription, the request page says it was delivered, and the Decided
// list shows the outcome, the reviewer and the time.
func TestQueueFlowInBrowser(t *testing.T) {
	ctx := newChrome(t)
	e := start(t)
	rcv := &receiver{}
	ehr := httptest.NewServer(rcv)
	t.Cleanup(ehr.Close)
	subscribe(t, e, ehr.URL+"/notify")
	original := pendedRequest(t, "flow-1")
	r := e.Post(submitPath, original)
	if r.Status != http.StatusOK {
		t.Fatalf("submit: %d", r.Status)
	}
	id := testenv.AuthorizationID(t, r.Body)

	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	queueStates := func() []string {
		t.Helper()
		rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
			`[...document.querySelectorAll('table.queue tbody tr')].map(r => r.querySelector('th a').textContent.trim() + ' ' + r.querySelector('td[data-label=State]').textContent.trim())`))
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	signIn := func(user string) {
		t.Helper()
		if err := chromedp.Do(ctx,
			chromedp.Navigate(e.URL+"/desk/login"),
			chromedp.WaitVisible(chromedp.CSS("#username")),
			chromedp.SendKeys(chromedp.CSS("#username"), user),
			chromedp.SendKeys(chromedp.CSS("#password"), reviewerPassword),
			chromedp.Click(chromedp.CSS(".signin button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS("#queue-search")),
		); err != nil {
			t.Fatalf("sign in as %s: %v", user, err)
		}
	}

	// The nurse searches by patient name and service code, and takes the request.
	signIn(reviewerUser)
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#q-patient"), "smi"),
		chromedp.SendKeys(chromedp.CSS("#q-code"), "27447"),
		chromedp.Click(chromedp.CSS("#search-button")),
		chromedp.WaitVisible(chromedp.CSS("table.queue")),
	); err != nil {
		t.Fatalf("search: %v", err)
	}
	if diff := cmp.Diff([]string{id + " New"}, queueStates()); diff != "" {
		t.Errorf("search results (-want +got):\n%s", diff)
	}
	checkAccessible(t, ctx, "queue search")
	screenshots(t, ctx, "queue-search")
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("table.queue tbody tr:first-child th a")),
		chromedp.WaitVisible(chromedp.CSS("#claim")),
		chromedp.Click(chromedp.CSS("#claim")),
		chromedp.WaitVisible(chromedp.CSS("#release")),
	); err != nil {
		t.Fatalf("take the request: %v", err)
	}
	if got := text("#assignee"); !strings.Contains(got, "Assigned to you") {
		t.Errorf("assignment after taking it: %q", got)
	}
	if got := text("#task-state"); got != "In review" {
		t.Errorf("state after taking it: %q", got)
	}

	// Ask for the progress note with the 14-day extension.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#action-1-request-info")),
		chromedp.WaitVisible(chromedp.CSS("#codes-1")),
		chromedp.SendKeys(chromedp.CSS("#codes-1"), "11506-3"),
		chromedp.SetValue(chromedp.CSS("#extension-1"), "noncontract-evidence"),
		chromedp.SendKeys(chromedp.CSS("#note-1"), "Send the orthopedic progress note."),
		chromedp.Click(chromedp.CSS("#send-decision")),
		chromedp.WaitVisible(chromedp.CSS("#flash")),
		chromedp.Navigate(e.URL+"/desk/?assignee=mine"),
		chromedp.WaitVisible(chromedp.CSS("table.queue")),
	); err != nil {
		t.Fatalf("request information: %v", err)
	}
	if diff := cmp.Diff([]string{id + " Awaiting provider information"}, queueStates()); diff != "" {
		t.Errorf("Mine after the request for information (-want +got):\n%s", diff)
	}

	// The provider answers with a PAS update; the request is back, marked new.
	const note = "Orthopedic progress note: 12 weeks of therapy, no relief."
	if r := e.Post(submitPath, testenv.InfoUpdate(t, original, "flow-1-update", note)); r.Status != http.StatusOK {
		t.Fatalf("provider update: %d %s", r.Status, r.Body)
	}
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("table.queue"))); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{id + " In review"}, queueStates()); diff != "" {
		t.Errorf("Mine after the provider's update (-want +got):\n%s", diff)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('table.queue .badge.new-info').length`)); err != nil || n != 1 {
		t.Errorf("rows marked New information: %d (%v), want 1", n, err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("table.queue tbody tr:first-child th a")),
		chromedp.WaitVisible(chromedp.CSS("#send-decision")),
	); err != nil {
		t.Fatal(err)
	}
	marked, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('article.support')].filter(a => a.querySelector('.new-mark')).map(a => a.textContent)`))
	if err != nil || len(marked) != 1 || !strings.Contains(marked[0], note) {
		t.Errorf("supporting information marked New = %q (%v), want only the provider's note", marked, err)
	}
	checkAccessible(t, ctx, "request with new information")
	screenshots(t, ctx, "request-new-information")
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#action-1-approve")),
		chromedp.Click(chromedp.CSS("#send-decision")),
		chromedp.WaitVisible(chromedp.CSS("#flash")),
		chromedp.Click(chromedp.CSS(".signout button")),
		chromedp.WaitVisible(chromedp.CSS("#username")),
	); err != nil {
		t.Fatalf("approve item 1 and sign out: %v", err)
	}

	// The physician denies item 2, then records the provider's appeal and overturns.
	signIn(physicianUser)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.URL+"/desk/tasks/"+id),
		chromedp.WaitVisible(chromedp.CSS("#action-2-deny")),
		chromedp.Click(chromedp.CSS("#action-2-deny")),
		chromedp.WaitVisible(chromedp.CSS("#reason-2")),
		chromedp.SendKeys(chromedp.CSS("#reason-2"), "0U"),
		chromedp.SendKeys(chromedp.CSS("#note-2"), "Conservative therapy not documented."),
		chromedp.Click(chromedp.CSS("#send-decision")),
		chromedp.WaitVisible(chromedp.CSS("#flash")),
		chromedp.Navigate(e.URL+"/desk/tasks/"+id),
		chromedp.WaitVisible(chromedp.CSS("#send-reopen")),
	); err != nil {
		t.Fatalf("deny item 2: %v", err)
	}
	checkAccessible(t, ctx, "decided request")
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#reopen-2")),
		chromedp.Click(chromedp.CSS("#kind-appeal")),
		chromedp.SetValue(chromedp.CSS("#appeal-from"), "provider"),
		chromedp.SendKeys(chromedp.CSS("#reopen-reason"), "The provider appeals with the imaging report."),
		chromedp.SendKeys(chromedp.CSS("#reopen-info"), "MRI: bone-on-bone arthritis of the right knee."),
	); err != nil {
		t.Fatalf("fill in the appeal: %v", err)
	}
	screenshots(t, ctx, "request-appeal")
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#send-reopen")),
		chromedp.WaitVisible(chromedp.CSS("#appeals")),
	); err != nil {
		t.Fatalf("record the appeal: %v", err)
	}
	if got := text("#task-state"); got != "Reopened" {
		t.Errorf("state after the appeal: %q", got)
	}
	if got := text("#appeals"); !strings.Contains(got, "bone-on-bone") || !strings.Contains(got, "from the provider") {
		t.Errorf("the appeal on the page lacks its information: %q", got)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#action-2-approve")),
		chromedp.SendKeys(chromedp.CSS("#note-2"), "Approved on appeal."),
		chromedp.Click(chromedp.CSS("#send-decision")),
		chromedp.WaitVisible(chromedp.CSS("#flash")),
	); err != nil {
		t.Fatalf("overturn: %v", err)
	}

	// The EHR gets the new response version; the page says it was delivered.
	testenv.WaitFor(t, 20*time.Second, "the overturned response at the EHR", func() bool {
		rs := rcv.eventResponses(t)
		return len(rs) > 0 && cmp.Equal(reviewActions(t, rs[len(rs)-1]), map[int]string{1: "A1", 2: "A1"})
	})
	testenv.WaitFor(t, 20*time.Second, "the request page to say the EHR was notified", func() bool {
		if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/desk/tasks/"+id), chromedp.WaitVisible(chromedp.CSS("#ehr-notified"))); err != nil {
			t.Fatal(err)
		}
		return text("#ehr-notified") == "Delivered"
	})

	// The Decided list: outcome, reviewer and time.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.URL+"/desk/?view=complete"), chromedp.WaitVisible(chromedp.CSS("table.queue"))); err != nil {
		t.Fatal(err)
	}
	row, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`Object.fromEntries([...document.querySelectorAll('table.queue tbody tr:first-child td')].map(td => [td.dataset.label, td.textContent.trim()]))`))
	if err != nil {
		t.Fatal(err)
	}
	if row["Outcome"] != "Approved" || row["Decided by"] != physicianName || !strings.HasSuffix(row["Decided"], "UTC") || row["EHR notified"] != "Delivered" {
		t.Errorf("Decided row = %v, want Approved by %s with a time, delivered", row, physicianName)
	}
	checkAccessible(t, ctx, "decided list")
	screenshots(t, ctx, "decided")
	assertNoPatientDataInLogs(t, e)
}
