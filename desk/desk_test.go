package desk_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/priora/priora/desk"
	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/store"
)

func TestSignIn(t *testing.T) {
	e := start(t)
	addReviewer(t, e, desk.Account{Username: "gone", Password: "a long enough password", Name: "Former Reviewer"})
	if err := e.App.Store.SetReviewerDisabled(context.Background(), "gone", true); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		user, password string
		// edit changes the form or request before it is sent.
		csrf   func(string) string
		origin string
		status int
		want   string
	}{
		{name: "right password", user: reviewerUser, password: reviewerPassword, status: http.StatusSeeOther},
		{name: "username in another case", user: "  Nurse.Rivera ", password: reviewerPassword, status: http.StatusSeeOther},
		{name: "wrong password", user: reviewerUser, password: "wrong", status: http.StatusUnauthorized, want: "username or password is wrong"},
		{name: "unknown username", user: "nobody", password: reviewerPassword, status: http.StatusUnauthorized, want: "username or password is wrong"},
		{name: "disabled account", user: "gone", password: "a long enough password", status: http.StatusUnauthorized, want: "username or password is wrong"},
		{name: "no CSRF token", user: reviewerUser, password: reviewerPassword, csrf: func(string) string { return "" }, status: http.StatusForbidden},
		{name: "wrong CSRF token", user: reviewerUser, password: reviewerPassword, csrf: func(s string) string { return strings.ToUpper(s) }, status: http.StatusForbidden},
		{name: "another site's form", user: reviewerUser, password: reviewerPassword, origin: "http://evil.example", status: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBrowser(t, e)
			token := csrf(t, b.get("/desk/login"))
			if tt.csrf != nil {
				token = tt.csrf(token)
			}
			if tt.origin != "" {
				b.origin = tt.origin
			}
			p := b.post("/desk/login", url.Values{"csrf": {token}, "username": {tt.user}, "password": {tt.password}})
			if p.Status != tt.status {
				t.Fatalf("status %d, want %d\n%.1500s", p.Status, tt.status, p.Body)
			}
			if tt.want != "" && !strings.Contains(p.Body, tt.want) {
				t.Errorf("page does not say %q", tt.want)
			}
			cookies := p.Header.Values("Set-Cookie")
			var session string
			for _, c := range cookies {
				if strings.HasPrefix(c, "priora_desk=") {
					session = c
				}
			}
			if tt.status != http.StatusSeeOther {
				if session != "" {
					t.Errorf("a failed sign-in set a session cookie: %s", session)
				}
				return
			}
			for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Path=/desk/"} {
				if !strings.Contains(session, attr) {
					t.Errorf("session cookie %q lacks %s", session, attr)
				}
			}
			if q := b.get("/desk/"); q.Status != http.StatusOK || !strings.Contains(q.Body, "Signed in as "+reviewerName) {
				t.Errorf("queue after sign-in: %d", q.Status)
			}
		})
	}
	if strings.Contains(e.Logs.String(), reviewerPassword) {
		t.Error("a password was logged")
	}
}

func TestSignInThrottle(t *testing.T) {
	e := start(t)
	b := newBrowser(t, e)
	for i := range 5 {
		if p := b.signIn(reviewerUser, "guess"+itoa(i)); p.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d", i+1, p.Status)
		}
	}
	// Locked: even the right password is refused, for this username only.
	if p := b.signIn(reviewerUser, reviewerPassword); p.Status != http.StatusTooManyRequests || !strings.Contains(p.Body, "Too many failed sign-ins") {
		t.Fatalf("after 5 failures: status %d, want 429", p.Status)
	}
	// Unknown usernames are throttled alike, so a lockout reveals nothing.
	for range 5 {
		b.signIn("nobody", "guess")
	}
	if p := b.signIn("nobody", "guess"); p.Status != http.StatusTooManyRequests {
		t.Errorf("unknown username after 5 failures: status %d, want 429", p.Status)
	}
	addReviewer(t, e, desk.Account{Username: "other", Password: "another long password"})
	if p := b.signIn("other", "another long password"); p.Status != http.StatusSeeOther {
		t.Errorf("another username is locked out too: status %d", p.Status)
	}
}

func TestSignedOutPages(t *testing.T) {
	e := start(t)
	id := submit(t, e, "signed-out-1")
	b := newBrowser(t, e)
	for _, path := range []string{"/desk/", "/desk/tasks/" + id, "/desk/metrics", "/desk/api/metrics", "/desk/tasks/" + id + "/attachments/1/0"} {
		t.Run("GET "+path, func(t *testing.T) {
			if p := b.get(path); p.Status != http.StatusSeeOther || p.Location != "/desk/login" {
				t.Errorf("status %d to %q, want 303 to /desk/login", p.Status, p.Location)
			}
		})
	}
	t.Run("POST decision", func(t *testing.T) {
		p := b.post("/desk/tasks/"+id+"/decision", url.Values{"action-1": {"approve"}})
		if p.Status != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", p.Status)
		}
	})
	t.Run("forged cookie", func(t *testing.T) {
		p := b.do(http.MethodGet, "/desk/", nil, "Cookie", "priora_desk=forged")
		if p.Status != http.StatusSeeOther {
			t.Errorf("status %d, want 303", p.Status)
		}
	})
	if p := b.get("/desk"); p.Status != http.StatusMovedPermanently || p.Location != "/desk/" {
		t.Errorf("/desk: %d %q", p.Status, p.Location)
	}
	if p := b.get("/desk/static/desk.css"); p.Status != http.StatusOK || !strings.HasPrefix(p.Header.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet: %d %s", p.Status, p.Header.Get("Content-Type"))
	}
}

func TestLogout(t *testing.T) {
	e := start(t)
	b := newBrowser(t, e)
	token := b.mustSignIn()
	if p := b.post("/desk/logout", url.Values{}); p.Status != http.StatusForbidden {
		t.Errorf("logout without the CSRF token: %d, want 403", p.Status)
	}
	jar := b.c.Jar
	u, _ := url.Parse(e.URL + "/desk/")
	old := jar.Cookies(u)
	if p := b.post("/desk/logout", url.Values{"csrf": {token}}); p.Status != http.StatusSeeOther || p.Location != "/desk/login?signed-out=1" {
		t.Fatalf("logout: %d %q", p.Status, p.Location)
	}
	if p := b.get("/desk/"); p.Status != http.StatusSeeOther {
		t.Errorf("queue after logout: %d, want a redirect to sign in", p.Status)
	}
	// The old cookie is dead on the server, not just forgotten by the browser.
	replay := newBrowser(t, e)
	replay.c.Jar.SetCookies(u, old)
	if p := replay.get("/desk/"); p.Status != http.StatusSeeOther {
		t.Errorf("replayed session cookie after logout: %d, want 303", p.Status)
	}
}

func TestSessionExpiry(t *testing.T) {
	var c clock
	e := start(t, testenv.WithNow(c.Now))
	b := newBrowser(t, e)
	b.mustSignIn()
	c.Move(20 * time.Minute)
	if p := b.get("/desk/"); p.Status != http.StatusOK {
		t.Fatalf("after 20 idle minutes: %d, want 200", p.Status)
	}
	c.Move(20 * time.Minute) // 20 minutes after the last use: the use slid the expiry
	if p := b.get("/desk/"); p.Status != http.StatusOK {
		t.Fatalf("20 minutes after the last use: %d, want 200 (sliding expiry)", p.Status)
	}
	c.Move(31 * time.Minute)
	if p := b.get("/desk/"); p.Status != http.StatusSeeOther {
		t.Fatalf("after 31 idle minutes: %d, want a redirect to sign in", p.Status)
	}
	n, err := e.App.Store.DeleteExpiredSessions(context.Background(), c.Now())
	if err != nil || n != 1 {
		t.Errorf("sweep: %d sessions removed, err %v; want 1", n, err)
	}
}

func TestDecisionForm(t *testing.T) {
	e := start(t)
	id := submit(t, e, "form-1")
	b := newBrowser(t, e)
	token := b.mustSignInAs(physicianUser)

	task := b.get("/desk/tasks/" + id)
	if task.Status != http.StatusOK {
		t.Fatalf("task: %d", task.Status)
	}
	for _, want := range []string{
		"27447", "Total knee arthroplasty", // items
		"joint-replacement",              // the rule that fired
		"G89.4",                          // diagnosis
		"MEM-1234567",                    // coverage member id
		noteText,                         // attachment shown inline
		"Weeks of conservative therapy",  // QuestionnaireResponse
		`for="reason-2"`, `for="note-1"`, // labelled controls
	} {
		if !strings.Contains(task.Body, want) && !strings.Contains(task.Body, htmlEscape(want)) {
			t.Errorf("task page lacks %q", want)
		}
	}
	att := b.get("/desk/tasks/" + id + "/attachments/1/0")
	if att.Status != http.StatusOK || att.Body != noteText || !strings.HasPrefix(att.Header.Get("Content-Type"), "text/plain") ||
		!strings.Contains(att.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("attachment: %d %q %v", att.Status, att.Body, att.Header)
	}
	if p := b.get("/desk/tasks/" + id + "/attachments/1/9"); p.Status != http.StatusNotFound {
		t.Errorf("missing attachment: %d, want 404", p.Status)
	}

	tests := []struct {
		name   string
		form   url.Values
		origin string
		status int
		want   string
	}{
		{"no CSRF token", url.Values{"action-1": {"approve"}}, "", http.StatusForbidden, "expired"},
		{"another site's form", url.Values{"csrf": {token}, "action-1": {"approve"}}, "http://evil.example", http.StatusForbidden, "another site"},
		{"nothing decided", url.Values{"csrf": {token}}, "", http.StatusUnprocessableEntity, "Choose a decision for at least one item"},
		{"denial without a reason", url.Values{"csrf": {token}, "action-2": {"deny"}}, "", http.StatusUnprocessableEntity, "Item 2: a denial needs a reasonCode"},
		{"modification without units", url.Values{"csrf": {token}, "action-1": {"modify"}, "quantity-1": {"-3"}}, "", http.StatusUnprocessableEntity, "Item 1: The authorized units must be a number above zero."},
		{"request for information without codes", url.Values{"csrf": {token}, "action-1": {"request-info"}}, "", http.StatusUnprocessableEntity, "Item 1: a request for information needs LOINC attachment codes"},
		{"unknown action", url.Values{"csrf": {token}, "action-1": {"maybe"}}, "", http.StatusBadRequest, "not one the desk offers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.origin = first(tt.origin, e.URL)
			defer func() { b.origin = e.URL }()
			p := b.post("/desk/tasks/"+id+"/decision", tt.form)
			if p.Status != tt.status {
				t.Fatalf("status %d, want %d\n%.2000s", p.Status, tt.status, p.Body)
			}
			if !strings.Contains(p.Body, tt.want) {
				t.Errorf("page does not say %q:\n%.3000s", tt.want, p.Body)
			}
		})
	}
	// The form keeps what the reviewer typed.
	p := b.post("/desk/tasks/"+id+"/decision", url.Values{"csrf": {token}, "action-2": {"deny"}, "note-1": {"kept note"}})
	if !strings.Contains(p.Body, "kept note") || !strings.Contains(p.Body, `value="deny" id="action-2-deny" checked`) {
		t.Errorf("the form lost the reviewer's entries")
	}
	a, err := e.App.Store.Authorization(context.Background(), "", id)
	if err != nil || a.Status != "pended" || len(a.Responses) != 1 {
		t.Fatalf("refused decisions changed the request: %v %+v", err, a)
	}

	// A request for more information keeps the item pended and asks for documents.
	p = b.post("/desk/tasks/"+id+"/decision", url.Values{"csrf": {token}, "action-1": {"request-info"}, "codes-1": {"11506-3, 18748-4"}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("request for information: %d\n%.2000s", p.Status, p.Body)
	}
	// A modification with units and dates.
	p = b.post("/desk/tasks/"+id+"/decision", url.Values{"csrf": {token}, "action-2": {"modify"}, "quantity-2": {"1"},
		"from-2": {"2016-08-10"}, "to-2": {"2016-08-12"}, "note-2": {"One knee at a time."}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("modification: %d\n%.2000s", p.Status, p.Body)
	}
	a, _ = e.App.Store.Authorization(context.Background(), "", id)
	got := []string{a.Items[0].Decision.Action, strings.Join(a.Items[0].Decision.RequestInfo, ","), a.Items[1].Decision.Action,
		a.Items[1].Decision.AuthorizedFrom, a.Items[1].Decision.ReviewerNPI, a.Items[1].Decision.ReviewerName}
	want := []string{"pend", "11506-3,18748-4", "modify", "2016-08-10", physicianNPI, physicianName}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
}

func TestDecideAndQueue(t *testing.T) {
	var c clock
	e := start(t, testenv.WithNow(c.Now))
	c.Set(-8 * 24 * time.Hour)
	oldest := submit(t, e, "queue-old")
	c.Set(-2 * time.Hour)
	newer := submit(t, e, "queue-new")
	c.Set(0)

	b := newBrowser(t, e)
	token := b.mustSignInAs(physicianUser)
	q := b.get("/desk/")
	if i, j := strings.Index(q.Body, oldest), strings.Index(q.Body, newer); i < 0 || j < 0 || i > j {
		t.Fatalf("the queue does not list the oldest request first")
	}
	if !strings.Contains(q.Body, "1 overdue") || !strings.Contains(q.Body, `class="overdue"`) {
		t.Errorf("the overdue request is not marked")
	}
	sorted := []struct{ query, first string }{
		{"?sort=age", oldest}, {"?sort=age&dir=desc", newer}, {"?sort=due", oldest}, {"?sort=due&dir=desc", newer},
		{"?sort=urgency", oldest}, {"?sort=service", oldest},
	}
	for _, s := range sorted {
		t.Run("sort "+s.query, func(t *testing.T) {
			p := b.get("/desk/" + s.query)
			if p.Status != http.StatusOK {
				t.Fatalf("status %d", p.Status)
			}
			i := strings.Index(p.Body, "/desk/tasks/")
			if i < 0 || !strings.HasPrefix(p.Body[i+len("/desk/tasks/"):], s.first) {
				t.Errorf("first row is not %s", s.first)
			}
		})
	}
	if p := b.get("/desk/?sort=%7B%24ne%7D"); p.Status != http.StatusBadRequest {
		t.Errorf("unknown sort: %d, want 400", p.Status)
	}

	p := b.post("/desk/tasks/"+oldest+"/decision", url.Values{"csrf": {token},
		"action-1": {"approve"}, "action-2": {"deny"}, "reason-2": {"0U"}, "note-2": {"Conservative therapy not documented."}})
	if p.Status != http.StatusSeeOther || p.Location != "/desk/?decided="+oldest {
		t.Fatalf("decision: %d %q\n%.2000s", p.Status, p.Location, p.Body)
	}
	q = b.get(p.Location)
	if strings.Contains(q.Body, `href="/desk/tasks/`+oldest) || !strings.Contains(q.Body, newer) || !strings.Contains(q.Body, "was recorded and sent") {
		t.Errorf("the queue still lists the decided request, or lost the other")
	}
	if d := b.get("/desk/?view=complete"); !strings.Contains(d.Body, `href="/desk/tasks/`+oldest) {
		t.Errorf("the decided view does not list the request")
	}
	a, err := e.App.Store.Authorization(context.Background(), "", oldest)
	if err != nil {
		t.Fatal(err)
	}
	cur := a.CurrentResponse()
	if diff := cmp.Diff(map[int]string{1: "A1", 2: "A3"}, reviewActions(t, []byte(cur.JSON))); diff != "" {
		t.Errorf("response review actions (-want +got):\n%s", diff)
	}
	if !strings.Contains(cur.JSON, physicianNPI) || len(a.Events) != 1 {
		t.Errorf("the response does not name the reviewer, or no event was recorded (%d)", len(a.Events))
	}
	// Deciding again is refused: nothing is pended any more.
	if again := b.post("/desk/tasks/"+oldest+"/decision", url.Values{"csrf": {token}, "action-1": {"deny"}, "note-1": {"x"}}); again.Status != http.StatusConflict ||
		!strings.Contains(again.Body, "decided meanwhile") {
		t.Errorf("a second decision on a decided request: %d, want 409 saying it was decided meanwhile", again.Status)
	}
	// The reviewer's accesses are in the audit trail: the decision as an
	// update of that request, the refused second try as a minor failure.
	recs, err := e.App.Store.Audit(context.Background(), store.AuditFilter{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	var decided, refused bool
	for _, r := range recs {
		if r.Type != "desk" || r.Client == "" || !strings.HasPrefix(r.Client, "reviewer:") {
			continue
		}
		if r.Route == "/desk/tasks/"+oldest+"/decision" && r.Action == "U" {
			decided = decided || r.Outcome == "0"
			refused = refused || (r.Status == http.StatusConflict && r.Outcome == "4")
		}
	}
	if !decided || !refused {
		t.Errorf("audit trail lacks the reviewer's decision (%v) or the refused retry (%v)", decided, refused)
	}
	assertNoPatientDataInLogs(t, e)
}

// assertNoPatientDataInLogs checks that nothing from the kit's patient,
// member or documents reached the log.
func assertNoPatientDataInLogs(t *testing.T, e *testenv.Env) {
	t.Helper()
	logs := e.Logs.String()
	for _, s := range []string{"SubscriberExample", "MEM-1234567", "12345678901", "WATSON", "Progress note", reviewerPassword} {
		if strings.Contains(logs, s) {
			t.Errorf("the log contains %q", s)
		}
	}
}

func TestMetricsAPI(t *testing.T) {
	var c clock
	e := start(t, testenv.WithNow(c.Now))
	// A request approved at once by the rules, and two pended ones.
	if r := e.Post(submitPath, testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json")); r.Status != http.StatusOK {
		t.Fatalf("submit: %d", r.Status)
	}
	c.Set(-10 * time.Hour)
	partial := submit(t, e, "metrics-1")
	submit(t, e, "metrics-2")
	c.Set(0)
	b := newBrowser(t, e)
	token := b.mustSignInAs(physicianUser)
	if p := b.post("/desk/tasks/"+partial+"/decision", url.Values{"csrf": {token},
		"action-1": {"approve"}, "action-2": {"deny"}, "reason-2": {"0U"}, "note-2": {"Not covered."}}); p.Status != http.StatusSeeOther {
		t.Fatalf("decision: %d", p.Status)
	}
	// CRD hook calls with known durations.
	ctx := context.Background()
	for i := 1; i <= 100; i++ {
		hook := "order-sign"
		if i%4 == 0 {
			hook = "order-select"
		}
		status := 200
		if i == 100 {
			status = 400
		}
		if err := e.App.Store.SaveHookCall(ctx, &store.HookCall{ID: "call-" + itoa(i), Received: c.Now().Add(-time.Minute), Service: hook,
			Hook: hook, Status: status, TotalMicros: int64(i) * 1000, Cards: 1}); err != nil {
			t.Fatal(err)
		}
	}

	p := b.get("/desk/api/metrics")
	if p.Status != http.StatusOK || !strings.HasPrefix(p.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("metrics: %d %s", p.Status, p.Body)
	}
	var got struct {
		PA struct {
			All, Standard, Expedited struct {
				Received, Decided, Approved, PartiallyApproved, Denied, Pended, PendedForReview int
				ApprovedRate                                                                    float64
				DecisionHoursMedian                                                             *float64
			}
			ByMonth []struct{ Month string } `json:"byMonth"`
		} `json:"priorAuthorization"`
		Hooks struct {
			Calls int
			All   struct {
				Calls, Failed              int
				P50Ms, P90Ms, P99Ms, MaxMs float64
			}
			ByHook []struct {
				Hook  string
				Calls int
			} `json:"byHook"`
		} `json:"crdHooks"`
	}
	if err := json.Unmarshal([]byte(p.Body), &got); err != nil {
		t.Fatal(err)
	}
	all := got.PA.All
	if all.Received != 3 || all.Decided != 2 || all.Approved != 1 || all.PartiallyApproved != 1 || all.Pended != 1 || all.PendedForReview != 2 || all.ApprovedRate != 0.5 {
		t.Errorf("all = %+v", all)
	}
	if h := all.DecisionHoursMedian; h == nil || *h < 4.9 || *h > 5.1 {
		t.Errorf("median decision time = %v h, want 5 (0 and 10 hours)", h)
	}
	if len(got.PA.ByMonth) == 0 {
		t.Errorf("no monthly breakdown")
	}
	hk := got.Hooks
	if hk.Calls != 100 || hk.All.Failed != 1 || hk.All.P50Ms != 50 || hk.All.P90Ms != 90 || hk.All.P99Ms != 99 || hk.All.MaxMs != 100 {
		t.Errorf("hooks = %+v", hk)
	}
	if diff := cmp.Diff(`[{order-select 25} {order-sign 75}]`, strings.TrimSpace(fmtHooks(hk.ByHook))); diff != "" {
		t.Errorf("by hook (-want +got):\n%s", diff)
	}

	page := b.get("/desk/metrics")
	if page.Status != http.StatusOK || !strings.Contains(page.Body, "<svg") || !strings.Contains(page.Body, "Partially approved") {
		t.Errorf("metrics page: %d", page.Status)
	}
	for _, bad := range []string{"?from=2026-13", "?from=junk", "?from=2026-05&to=2026-01", "?from=2000-01&to=2026-01"} {
		if r := b.get("/desk/api/metrics" + bad); r.Status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, r.Status)
		}
	}
}

// TestSecureCookies: behind https the cookies are Secure, with the
// __Host- prefix (Path=/, no Domain), and posts must come from the
// https origin.
func TestSecureCookies(t *testing.T) {
	const base = "https://pa.payer.example"
	e := start(t, testenv.WithConfig(func(c *app.Config) { c.BaseURL = base }))
	b := newBrowser(t, e)
	login := b.get("/desk/login")
	var loginCookie string
	for _, c := range login.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "__Host-priora_desk_login=") {
			loginCookie = strings.SplitN(c, ";", 2)[0]
			for _, attr := range []string{"Secure", "HttpOnly", "SameSite=Strict", "Path=/;"} {
				if !strings.Contains(c+";", attr) {
					t.Errorf("login cookie %q lacks %s", c, attr)
				}
			}
		}
	}
	if loginCookie == "" {
		t.Fatalf("no __Host- login cookie: %v", login.Header.Values("Set-Cookie"))
	}
	form := url.Values{"csrf": {csrf(t, login)}, "username": {reviewerUser}, "password": {reviewerPassword}}
	for _, tt := range []struct {
		origin string
		status int
	}{{e.URL, http.StatusForbidden}, {base, http.StatusSeeOther}} {
		b.origin = tt.origin
		p := b.do(http.MethodPost, "/desk/login", form, "Cookie", loginCookie)
		if p.Status != tt.status {
			t.Fatalf("sign-in from %s: %d, want %d", tt.origin, p.Status, tt.status)
		}
		if p.Status != http.StatusSeeOther {
			continue
		}
		var session string
		for _, c := range p.Header.Values("Set-Cookie") {
			if strings.HasPrefix(c, "__Host-priora_desk=") {
				session = c
			}
		}
		for _, attr := range []string{"Secure", "HttpOnly", "SameSite=Strict", "Path=/;"} {
			if !strings.Contains(session+";", attr) {
				t.Errorf("session cookie %q lacks %s", session, attr)
			}
		}
	}
}
