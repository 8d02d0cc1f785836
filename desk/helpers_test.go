package desk_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/priora/priora/conformance/check"
	"github.com/priora/priora/desk"
	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
)

const (
	submitPath = "/fhir/Claim/$submit"
	// The reviewer account the tests sign in with.
	reviewerUser     = "nurse.rivera"
	reviewerPassword = "correct horse battery staple"
	reviewerNPI      = "1234567893"
	reviewerName     = "Ana Rivera, RN"
	// The physician reviewer (same password) makes adverse determinations.
	physicianUser = "dr.okafor"
	physicianNPI  = "1245319599"
	physicianName = "Chidi Okafor, MD"
	// noteText is the progress note attached to the pended request; the
	// patient's name in the kit fixtures is SUSAN WATSON's patient.
	noteText = "Progress note: 12 weeks of physical therapy without relief; BMI 31."
)

// clock is the server's clock: real time plus an offset tests move.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time       { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Set(d time.Duration)  { c.offset.Store(int64(d)) }
func (c *clock) Move(d time.Duration) { c.offset.Add(int64(d)) }

// start runs Priora with fast notification delivery to loopback and a
// reviewer account.
func start(t *testing.T, opts ...testenv.Option) *testenv.Env {
	t.Helper()
	e := testenv.Start(t, append([]testenv.Option{testenv.WithConfig(fastDelivery)}, opts...)...)
	addReviewer(t, e, desk.Account{Username: reviewerUser, Password: reviewerPassword, NPI: reviewerNPI, Name: reviewerName, Role: "nurse"})
	addReviewer(t, e, desk.Account{Username: physicianUser, Password: reviewerPassword, NPI: physicianNPI, Name: physicianName, Role: "physician"})
	return e
}

func addReviewer(t *testing.T, e *testenv.Env, a desk.Account) {
	t.Helper()
	if err := desk.AddReviewer(context.Background(), e.App.Store, a, time.Now()); err != nil {
		t.Fatalf("add reviewer: %v", err)
	}
}

func fastDelivery(c *app.Config) {
	c.Subscriptions.PollInterval = 20 * time.Millisecond
	c.Subscriptions.RetryBase = 50 * time.Millisecond
	c.Subscriptions.RetryCap = 300 * time.Millisecond
	c.Subscriptions.Lease = time.Second
	c.Subscriptions.Timeout = 3 * time.Second
	c.Subscriptions.HandshakeAttempts = 2
}

// pendedRequest is the kit approval request with both items asking for a
// total knee replacement (pended for review by the sample rules), a
// progress note carried as attachment data and a QuestionnaireResponse.
// bundleID makes it a request of its own.
func pendedRequest(t *testing.T, bundleID string) []byte {
	t.Helper()
	var b map[string]any
	if err := json.Unmarshal(testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json"), &b); err != nil {
		t.Fatal(err)
	}
	b["identifier"].(map[string]any)["value"] = bundleID
	entries := b["entry"].([]any)
	claim := entries[0].(map[string]any)["resource"].(map[string]any)
	for _, it := range claim["item"].([]any) {
		it.(map[string]any)["productOrService"] = map[string]any{"coding": []any{
			map[string]any{"system": "http://www.ama-assn.org/go/cpt", "code": "27447", "display": "Total knee arthroplasty"}}}
	}
	for _, e := range entries {
		r := e.(map[string]any)["resource"].(map[string]any)
		if r["resourceType"] == "DocumentReference" {
			att := r["content"].([]any)[0].(map[string]any)["attachment"].(map[string]any)
			att["data"] = base64.StdEncoding.EncodeToString([]byte(noteText))
			att["title"] = "Progress note"
			delete(att, "url") // PAS 2.2.1 prohibits it; the data is here
		}
	}
	entries = append(entries, map[string]any{
		"fullUrl": "http://davinci-pas.org/fhir/QuestionnaireResponse/knee-dtr",
		"resource": map[string]any{
			"resourceType":  "QuestionnaireResponse",
			"id":            "knee-dtr",
			"questionnaire": "http://payer.example.org/fhir/Questionnaire/knee-arthroplasty",
			"status":        "completed",
			"subject":       map[string]any{"reference": "Patient/SubscriberExample"},
			"authored":      "2026-01-05T10:00:00Z",
			"item": []any{
				map[string]any{"linkId": "1", "text": "Weeks of conservative therapy", "answer": []any{map[string]any{"valueInteger": 12}}},
				map[string]any{"linkId": "2", "text": "Imaging shows bone-on-bone arthritis", "answer": []any{map[string]any{"valueBoolean": true}}},
			},
		},
	})
	b["entry"] = entries
	infos := claim["supportingInfo"].([]any)
	docInfo := infos[0].(map[string]any)["extension"].([]any)[0]
	claim["supportingInfo"] = append(infos, map[string]any{
		"extension": []any{docInfo},
		"sequence":  6,
		"category": map[string]any{"coding": []any{map[string]any{
			"system": "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes", "code": "additionalInformation"}}},
		"valueReference": map[string]any{"reference": "QuestionnaireResponse/knee-dtr"},
	})
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// submit posts a pended request and returns Priora's request id.
func submit(t *testing.T, e *testenv.Env, bundleID string) string {
	t.Helper()
	r := e.With(t).Post(submitPath, pendedRequest(t, bundleID))
	if r.Status != http.StatusOK {
		t.Fatalf("$submit: %d %.3000s", r.Status, errorsOf(r.Body))
	}
	return testenv.AuthorizationID(t, r.Body)
}

// browser is an HTTP client with cookies that does not follow redirects
// and sends the desk's Origin on POSTs, as a browser would.
type browser struct {
	t      *testing.T
	e      *testenv.Env
	c      *http.Client
	origin string
}

func newBrowser(t *testing.T, e *testenv.Env) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, e: e, origin: e.URL, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// page is an answer of the desk.
type page struct {
	Status   int
	Header   http.Header
	Body     string
	Location string
}

func (b *browser) do(method, path string, form url.Values, header ...string) *page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if b.origin != "" {
			req.Header.Set("Origin", b.origin)
		}
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return &page{Status: resp.StatusCode, Header: resp.Header, Body: string(raw), Location: resp.Header.Get("Location")}
}

func (b *browser) get(path string) *page {
	b.t.Helper()
	return b.do(http.MethodGet, path, nil)
}

func (b *browser) post(path string, form url.Values) *page {
	b.t.Helper()
	return b.do(http.MethodPost, path, form)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token of the first form on a page.
func csrf(t *testing.T, p *page) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no CSRF field on the page (status %d):\n%.2000s", p.Status, p.Body)
	}
	return m[1]
}

// signIn signs the browser in and returns the session's CSRF token.
func (b *browser) signIn(user, password string) *page {
	b.t.Helper()
	form := b.get("/desk/login")
	return b.post("/desk/login", url.Values{"csrf": {csrf(b.t, form)}, "username": {user}, "password": {password}})
}

// mustSignIn signs in as the test reviewer and returns the CSRF token of
// the session.
func (b *browser) mustSignIn() string {
	b.t.Helper()
	return b.mustSignInAs(reviewerUser)
}

// mustSignInAs signs in as one of the test accounts.
func (b *browser) mustSignInAs(user string) string {
	b.t.Helper()
	if p := b.signIn(user, reviewerPassword); p.Status != http.StatusSeeOther || p.Location != "/desk/" {
		b.t.Fatalf("sign-in: %d %s\n%.1500s", p.Status, p.Location, p.Body)
	}
	q := b.get("/desk/")
	if q.Status != http.StatusOK {
		b.t.Fatalf("queue after sign-in: %d", q.Status)
	}
	return csrf(b.t, q)
}

// receiver is a rest-hook endpoint on 127.0.0.1 that keeps every
// notification it gets.
type receiver struct {
	mu  sync.Mutex
	got [][]byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.got = append(r.got, b)
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// notification is the part of a backport notification tests read.
type notification struct {
	Entry []struct {
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

// eventResponses returns the PAS Response Bundles carried by the event
// notifications received so far, in arrival order.
func (r *receiver) eventResponses(t *testing.T) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]byte
	for _, b := range r.got {
		if !strings.Contains(string(b), `"event-notification"`) {
			continue
		}
		var n notification
		if err := json.Unmarshal(b, &n); err != nil {
			t.Errorf("notification is not JSON: %v", err)
			continue
		}
		if len(n.Entry) > 1 {
			out = append(out, n.Entry[1].Resource)
		}
	}
	return out
}

// subscribe registers a rest-hook Subscription to the PAS topic for the
// kit's requesting organization and waits until its handshake succeeded.
func subscribe(t *testing.T, e *testenv.Env, endpoint string) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(testenv.Fixture(t, "subscriptions/kit_subscription_resource.json"), &m); err != nil {
		t.Fatal(err)
	}
	m["channel"].(map[string]any)["endpoint"] = endpoint
	body, _ := json.Marshal(m)
	e = e.With(t)
	r := e.Post("/fhir/Subscription", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create subscription: %d %s", r.Status, r.Body)
	}
	id, _ := r.JSON(t)["id"].(string)
	testenv.WaitFor(t, 15*time.Second, "the subscription to become active", func() bool {
		s := e.Get("/fhir/Subscription/" + id)
		return s.Status == http.StatusOK && s.JSON(t)["status"] == "active"
	})
}

// reviewActions reads each ClaimResponse item's X12 review action code
// from a PAS Response Bundle, by item sequence.
func reviewActions(t *testing.T, bundle []byte) map[int]string {
	t.Helper()
	b, err := check.Decode(bundle)
	if err != nil {
		t.Fatalf("not a PAS Response Bundle: %v %.300s", err, bundle)
	}
	r, err := check.ReadPAS(b)
	if err != nil {
		t.Fatalf("not a PAS Response Bundle: %v %.300s", err, bundle)
	}
	out := map[int]string{}
	for _, it := range r.Items {
		out[it.Sequence] = it.ReviewAction
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func htmlEscape(s string) string { return html.EscapeString(s) }

func fmtHooks(v any) string { return fmt.Sprint(v) }

// errorsOf keeps the error issues of an OperationOutcome, for messages.
func errorsOf(body []byte) string {
	var oo struct {
		Issue []struct{ Severity, Diagnostics string }
	}
	if json.Unmarshal(body, &oo) != nil {
		return string(body)
	}
	var out []string
	for _, i := range oo.Issue {
		if i.Severity == "error" || i.Severity == "fatal" {
			out = append(out, i.Diagnostics)
		}
	}
	return strings.Join(out, "\n")
}
