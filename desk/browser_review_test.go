package desk_test

import (
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
)

// TestEligibilityAndCriteriaInBrowser: what a reviewer needs before
// deciding, in a real browser. With the roster in warn mode, the queue's
// eligibility filter narrows the list to the members who did not check
// out; a mismatched member's request shows the roster's result beside
// what the EHR sent; a request the criteria did not approve shows each
// criterion with its outcome and evidence.
func TestEligibilityAndCriteriaInBrowser(t *testing.T) {
	ctx := newChrome(t)
	e := start(t, testenv.WithConfig(func(c *app.Config) { c.Eligibility = "warn" }),
		testenv.WithNow(func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }))
	roster, err := os.ReadFile("../testdata/members/roster.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	postRoster(t, e, roster)
	notFound := submit(t, e, "browser-elig-not-found")
	postRoster(t, e, kitMember("1987-02-21")) // the kit sends 1987-02-20
	mismatch := submit(t, e, "browser-elig-mismatch")
	r := e.Post(submitPath, testenv.Fixture(t, "policies/mri-lumbar-not-met.json"))
	if r.Status != http.StatusOK {
		t.Fatalf("$submit: %d %s", r.Status, errorsOf(r.Body))
	}
	criteria := testenv.AuthorizationID(t, r.Body) // its member is not on the roster either
	postRoster(t, e, kitMember("1987-02-20"))
	eligible := submit(t, e, "browser-elig-ok")

	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.URL+"/desk/"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), physicianUser),
		chromedp.SendKeys(chromedp.CSS("#password"), reviewerPassword),
		chromedp.Click(chromedp.CSS(".signin button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("table.queue")),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	queued := func() []string {
		t.Helper()
		ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
			`[...document.querySelectorAll('table.queue tbody tr th a')].map(a => a.textContent.trim())`))
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(ids)
		return ids
	}
	all := []string{notFound, mismatch, criteria, eligible}
	sort.Strings(all)
	if diff := cmp.Diff(all, queued()); diff != "" {
		t.Errorf("queue (-want +got):\n%s", diff)
	}

	// The eligibility filter, as a reviewer clicks it.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.Search(`//nav[@id="eligibility-filter"]//a[normalize-space()="Not eligible"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#eligibility-filter strong[aria-current="true"]`)),
	); err != nil {
		t.Fatalf("filter the queue: %v", err)
	}
	notEligible := []string{notFound, mismatch, criteria}
	sort.Strings(notEligible)
	if diff := cmp.Diff(notEligible, queued()); diff != "" {
		t.Errorf("not-eligible queue (-want +got):\n%s", diff)
	}
	checkAccessible(t, ctx, "queue filtered by eligibility")
	screenshots(t, ctx, "queue-not-eligible")

	// The mismatched member's request: the roster's result beside the EHR's.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.Search(`//table[contains(@class,"queue")]//th//a[normalize-space()="`+mismatch+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("#eligibility")),
	); err != nil {
		t.Fatalf("open the mismatched request: %v", err)
	}
	card, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#eligibility")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Demographics differ", "warn mode", "birthDate", "1987-02-20", "1987-02-21", "MEM-1234567"} {
		if !strings.Contains(card, want) {
			t.Errorf("the eligibility card lacks %q:\n%s", want, card)
		}
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('#eligibility table.mismatches tbody tr')].map(r => [...r.children].map(c => c.textContent.trim()).join(' | '))`))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"birthDate | 1987-02-20 | 1987-02-21"}, rows); diff != "" {
		t.Errorf("mismatch rows, sent by the EHR | on file (-want +got):\n%s", diff)
	}
	checkAccessible(t, ctx, "request with an eligibility mismatch")
	screenshots(t, ctx, "request-eligibility")

	// The request the criteria did not approve.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.URL+"/desk/tasks/"+criteria),
		chromedp.WaitVisible(chromedp.CSS("details.criteria")),
	); err != nil {
		t.Fatalf("open the criteria request: %v", err)
	}
	found, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('details.criteria li.criterion')].map(li => li.className.replace('criterion ', '') + ' ' + li.querySelector('code').textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 3 || !contains(found, "c-not-met conservative-therapy") {
		t.Errorf("criteria shown (class, id): %v; want 3 with conservative-therapy not met", found)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("details.criteria")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Coverage criteria (3)", "Not met: Low back pain (ICD-10-CM M54.5x) is a diagnosis of the request", "Evidence: Bundle.entry[0].resource.diagnosis[0]"} {
		if !strings.Contains(text, want) {
			t.Errorf("criteria list lacks %q:\n%s", want, text)
		}
	}
	checkAccessible(t, ctx, "request with criteria")
	screenshots(t, ctx, "request-criteria")
}
