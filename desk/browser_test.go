package desk_test

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"github.com/priora/priora/internal/testenv"
)

// chromium finds the browser: $PRIORA_CHROMIUM, else chromium (Debian's
// package) or a Chrome on PATH. Without one the browser tests skip, except
// in CI, where .ci/run installs chromium and they must run.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PRIORA_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed, and CI is set: .ci/run should have installed it (apt-get install chromium)")
	}
	t.Skip("skipping the browser test: chromium is not installed (apt-get install chromium, or set PRIORA_CHROMIUM)")
	return ""
}

// newChrome starts a headless Chromium with a fresh profile and no
// outbound traffic of its own (the machine may have no network).
func newChrome(t *testing.T) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping a browser test")
	}
	path := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })
	return ctx
}

// artifacts is where screenshots go: testdata/artifacts/desk (ignored by git).
func artifacts(t *testing.T) string {
	dir := filepath.Join(testenv.Root(), "testdata", "artifacts", "desk")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// widths are the two layouts the desk must work at: a laptop and a phone.
var widths = []struct {
	name          string
	width, height int64
}{{"1280", 1280, 900}, {"390", 390, 844}}

// screenshots saves a full-page PNG of the current page at each width,
// as name-WIDTH.png, and returns to the wide layout.
func screenshots(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := artifacts(t)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.activeElement.blur(), true`)); err != nil {
		t.Fatal(err)
	}
	for _, w := range widths {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(w.width, w.height)); err != nil {
			t.Fatalf("viewport %s: %v", w.name, err)
		}
		// At 390 px nothing may overflow sideways (tables scroll in their own box).
		overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
		if err != nil {
			t.Fatal(err)
		}
		if overflow {
			t.Errorf("%s at %s px: the page is wider than the window", name, w.name)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(dir, name+"-"+w.name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatal(err)
	}
}

// checkAccessible asserts what can be checked mechanically: every visible
// form control has a label, every table has header cells, and the first
// Tab lands on the skip link.
func checkAccessible(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	unlabelled, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`
		[...document.querySelectorAll('input, select, textarea, button')]
			.filter(el => el.type !== 'hidden')
			.filter(el => el.tagName === 'BUTTON' ? !el.textContent.trim() : el.labels.length === 0)
			.map(el => el.outerHTML.slice(0, 120))`))
	if err != nil {
		t.Fatal(err)
	}
	if len(unlabelled) > 0 {
		t.Errorf("%s: controls without a label: %v", page, unlabelled)
	}
	headless, err := chromedp.Run(ctx, chromedp.Evaluate[int](`[...document.querySelectorAll('table')].filter(t => !t.querySelector('th')).length`))
	if err != nil {
		t.Fatal(err)
	}
	if headless > 0 {
		t.Errorf("%s: %d tables without header cells", page, headless)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.activeElement.blur(), window.scrollTo(0, 0), true`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
		t.Fatal(err)
	}
	first, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.className`))
	if err != nil {
		t.Fatal(err)
	}
	if first != "skip" {
		t.Errorf("%s: the first Tab focuses %q, want the skip link", page, first)
	}
}

// TestDeskInBrowser is the desk end to end, in a real browser: a reviewer
// signs in, opens the oldest pended request, approves one item and denies
// the other with a reason; the queue changes at once, the EHR's
// subscription endpoint receives the final PAS response, and the metrics
// page counts the decision.
func TestDeskInBrowser(t *testing.T) {
	ctx := newChrome(t)
	var c clock
	e := start(t, testenv.WithNow(c.Now))
	rcv := &receiver{}
	ehr := httptest.NewServer(testenv.CheckedEndpoint(t, rcv))
	t.Cleanup(ehr.Close)
	subscribe(t, e, ehr.URL+"/notify")

	c.Set(-8 * 24 * time.Hour) // received eight days ago: overdue
	oldest := submit(t, e, "browser-oldest")
	c.Set(-3 * time.Hour)
	newer := submit(t, e, "browser-newer")
	c.Set(0)

	// Sign in.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.URL+"/desk/"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
	); err != nil {
		t.Fatalf("open the desk: %v", err)
	}
	checkAccessible(t, ctx, "sign-in")
	screenshots(t, ctx, "signin")
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#username"), physicianUser),
		chromedp.SendKeys(chromedp.CSS("#password"), reviewerPassword),
		chromedp.Click(chromedp.CSS(".signin button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("table.queue")),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}

	// The queue: oldest first, the overdue one marked.
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('table.queue tbody tr')].map(r => r.querySelector('th a').textContent.trim() + (r.classList.contains('overdue') ? ' overdue' : ''))`))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{oldest + " overdue", newer}, rows); diff != "" {
		t.Errorf("queue rows (-want +got):\n%s", diff)
	}
	checkAccessible(t, ctx, "queue")
	screenshots(t, ctx, "queue")

	// Open the oldest request.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("table.queue tbody tr:first-child th a")),
		chromedp.WaitVisible(chromedp.CSS("#send-decision")),
	); err != nil {
		t.Fatalf("open the oldest request: %v", err)
	}
	heading, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil || !strings.Contains(heading, oldest) {
		t.Fatalf("request page heading %q (%v), want %s", heading, err, oldest)
	}
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Total knee arthroplasty", "joint-replacement", "G89.4", "MEM-1234567", noteText, "Weeks of conservative therapy", "Overdue"} {
		if !strings.Contains(body, want) {
			t.Errorf("request page lacks %q", want)
		}
	}
	checkAccessible(t, ctx, "request")
	screenshots(t, ctx, "request")

	// Approve item 1, deny item 2 with a reason.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#action-1-approve")),
		chromedp.Click(chromedp.CSS("#action-2-deny")),
		chromedp.WaitVisible(chromedp.CSS("#reason-2")),
		chromedp.SendKeys(chromedp.CSS("#reason-2"), "0U"),
		chromedp.SendKeys(chromedp.CSS("#note-2"), "Conservative therapy not documented."),
	); err != nil {
		t.Fatalf("fill in the decision: %v", err)
	}
	screenshots(t, ctx, "decision")
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#send-decision")),
		chromedp.WaitVisible(chromedp.CSS("#flash")),
	); err != nil {
		t.Fatalf("send the decision: %v", err)
	}

	// The queue changed at once: only the newer request is left.
	rows, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('table.queue tbody tr th a')].map(a => a.textContent.trim())`))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{newer}, rows); diff != "" {
		t.Errorf("queue after the decision (-want +got):\n%s", diff)
	}
	screenshots(t, ctx, "queue-after")

	// The EHR got the final PAS response through its subscription.
	var got map[int]string
	testenv.WaitFor(t, 20*time.Second, "the notification with the final response", func() bool {
		rs := rcv.eventResponses(t)
		if len(rs) == 0 {
			return false
		}
		got = reviewActions(t, rs[len(rs)-1])
		return len(got) == 2
	})
	if diff := cmp.Diff(map[int]string{1: "A1", 2: "A3"}, got); diff != "" {
		t.Errorf("notified response review actions (-want +got):\n%s", diff)
	}

	// The metrics page counts the decision.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`nav a[href="/desk/metrics"]`)),
		chromedp.WaitVisible(chromedp.CSS("#cms-figures")),
	); err != nil {
		t.Fatalf("open the metrics: %v", err)
	}
	figures, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`Object.fromEntries(
		[...document.querySelectorAll('#cms-figures tbody tr')].map(r => [r.querySelector('th').textContent.trim(), r.querySelector('td:last-child').textContent.trim()]))`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"Requests received": "2", "Decided": "1", "Partially approved": "1 (100.0 %)", "Pended now (awaiting decision)": "1 (50.0 %)"}
	for k, v := range want {
		if figures[k] != v {
			t.Errorf("metrics %q = %q, want %q", k, figures[k], v)
		}
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('svg.chart rect').length`)); err != nil || n == 0 {
		t.Errorf("the trend chart has no bars (%v)", err)
	}
	checkAccessible(t, ctx, "metrics")
	screenshots(t, ctx, "metrics")
	assertNoPatientDataInLogs(t, e)
}
