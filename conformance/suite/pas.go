package suite

import (
	"cmp"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/priora/priora/conformance/check"
	"github.com/priora/priora/fhir"
	"github.com/priora/priora/pas"
)

// pasState is what the PAS tests learn as they go.
type pasState struct {
	subscription map[string]any // as sent
	subResp      *response
	subID        string
	handshake    *notification

	subs   map[string]*submission
	event  *notification // the pended request's final-result notification
	inq    []*pasResponse
	inqRsp *response
}

// submission is one $submit of an input Bundle.
type submission struct {
	input     string
	request   []byte
	sequences []int
	sent      time.Time
	resp      *response
	checked   *pasResponse
}

const (
	submitPath  = "/Claim/$submit"
	inquirePath = "/Claim/$inquire"
	slowSubmit  = 15 * time.Second // PAS spec-7
)

func (s *session) submission(key string) *submission {
	if s.pas.subs == nil {
		s.pas.subs = map[string]*submission{}
	}
	sub := s.pas.subs[key]
	if sub == nil {
		sub = &submission{}
		s.pas.subs[key] = sub
	}
	return sub
}

// prepare reads an input Bundle and gives it a fresh Bundle.identifier and
// timestamp, as an EHR does for each transaction (so a server that
// replays identical submissions still decides this one).
func (s *session) prepare(t *T, input string) ([]byte, []int) {
	raw, err := s.input(input)
	if err != nil {
		t.Skipf("%v", err)
	}
	b, err := decodeObject(raw)
	if err != nil {
		t.Skipf("input %s is not a JSON object: %v", input, err)
	}
	if id := obj(b["identifier"]); id != nil {
		id["value"] = fmt.Sprintf("%s-%s-%s", cmp.Or(str(id, "value"), "conformance"), s.runID, newID()[:6])
	}
	b["timestamp"] = time.Now().UTC().Format(time.RFC3339)
	if !s.cfg.RealData {
		markTestData(b)
	}
	var seqs []int
	if entries := arr(b["entry"]); len(entries) > 0 {
		for _, it := range arr(obj(obj(entries[0])["resource"])["item"]) {
			if n, ok := check.Number(obj(it)["sequence"]); ok {
				seqs = append(seqs, n)
			}
		}
	}
	return mustJSON(b), seqs
}

// validateInput is the kit's request-validation test: a tester input that
// breaks the PAS request profiles is reported and the test skipped.
func (s *session) validateInput(t *T, input string, inquiry bool) {
	raw, err := s.input(input)
	if err != nil {
		t.Skipf("%v", err)
	}
	// The very checks Priora's $submit and $inquire and `priora validate`
	// make: the base R4 parse, the PAS Bundle rules and the profiles.
	profile, name := pas.ProfileRequestBundle, "profile-pas-request-bundle"
	if inquiry {
		profile, name = pas.ProfileInquiryRequestBundle, "profile-pas-inquiry-request-bundle"
	}
	if err := pas.CheckRequest(t.Context(), s.parser, pas.ProfileValidator(s.v), raw, profile); err != nil {
		var errs []fhir.Issue
		for _, is := range fhir.IssuesOf(err) {
			if is.Severity == "error" || is.Severity == "fatal" {
				errs = append(errs, is)
			}
		}
		t.Skipf("input %s does not conform to %s (%d errors), so the server may rightly refuse it:%s", input, name, len(errs), fhirIssues(errs, 6))
	}
}

// fhirIssues lists up to max issues, one per line.
func fhirIssues(list []fhir.Issue, max int) string {
	var b strings.Builder
	for i, is := range list {
		if i == max {
			fmt.Fprintf(&b, "\n  … and %d more", len(list)-max)
			break
		}
		fmt.Fprintf(&b, "\n  %s: %s", cmp.Or(is.Expression, "-"), is.Diagnostics)
	}
	return b.String()
}

// doSubmit posts an input to $submit and checks the HTTP exchange.
func (s *session) doSubmit(t *T, key, input string) {
	sub := s.submission(key)
	sub.input = input
	sub.request, sub.sequences = s.prepare(t, input)
	sub.sent = time.Now()
	r, err := s.c.fhir(t.Context(), http.MethodPost, submitPath, sub.request)
	if err != nil {
		t.Fatalf("POST %s%s: %v", s.c.fhirBase, submitPath, err)
	}
	sub.resp = r
	if r.Status != http.StatusOK && r.Status != http.StatusCreated {
		t.Fatalf("PAS R1/spec-39: POST Claim/$submit with %s answered HTTP %d, want 200 or 201: %s", input, r.Status, snippet(r.Body))
	}
	if m, err := decodeObject(r.Body); err != nil || str(m, "resourceType") != "Bundle" {
		t.Failf("PAS R1: the $submit answer for %s is not a JSON Bundle (got %s)", input, snippet(r.Body))
	}
	if r.Elapsed > slowSubmit {
		t.Warnf("PAS spec-7: $submit took %s, more than 15 s", r.Elapsed.Round(time.Millisecond))
	}
}

// checkSubmitted validates the answer of an earlier submission.
func (s *session) checkSubmitted(t *T, key string) {
	sub := s.pas.subs[key]
	if sub == nil || sub.resp == nil || sub.resp.Status/100 != 2 {
		t.Skipf("no successful $submit answer to check")
	}
	b, err := decodeObject(sub.resp.Body)
	if err != nil {
		t.Fatalf("the $submit answer is not JSON: %v", err)
	}
	sub.checked = s.checkResponse(t, "$submit response to "+sub.input, b, sub.sequences, false)
}

// workflow is groups 2.1-2.3: submit an input and check its decision.
func (s *session) workflow(num, title, key, input, decision string) []Test {
	g := fmt.Sprintf("PAS %s %s", num, title)
	id := "pas-" + num + ".1."
	return []Test{
		{ID: id + "01", Group: g, Name: "Request Bundle conforms to the PAS request profiles (input)", Run: func(t *T) {
			s.validateInput(t, input, false)
		}},
		{ID: id + "02", Group: g, Name: "Claim/$submit answers 200 or 201 with a Bundle", Run: func(t *T) {
			s.doSubmit(t, key, input)
		}},
		{ID: id + "03", Group: g, Name: "Response is a conformant PAS Response Bundle", Run: func(t *T) {
			s.checkSubmitted(t, key)
		}},
		{ID: id + "04", Group: g, Name: "ClaimResponse carries review action " + decision, Run: func(t *T) {
			sub := s.pas.subs[key]
			if sub == nil || sub.resp == nil || sub.resp.Status/100 != 2 {
				t.Skipf("no successful $submit answer")
			}
			r, err := readResponse(sub.resp.Body)
			if err != nil {
				t.Fatalf("%v", err)
			}
			if !r.hasAction(decision) {
				t.Failf("PAS R37: no ClaimResponse.item.adjudication reviewActionCode is %s#%s (items: %s); input %s should get %s", x12ReviewAction, decision, strings.Join(r.reviewActions(), ", "), input, decisionName[decision])
			}
		}},
	}
}

var decisionName = map[string]string{"A1": "an approval (A1)", "A3": "a denial (A3)", "A4": "a pend (A4)"}

func (s *session) pasTests() []Test {
	var tests []Test
	tests = append(tests, s.capabilityTest())
	tests = append(tests, s.subscriptionTests()...)
	tests = append(tests, s.workflow("2.1", "Successful Approval", "approval", "pas/approval.json", "A1")...)
	tests = append(tests, s.workflow("2.2", "Successful Denial", "denial", "pas/denial.json", "A3")...)
	tests = append(tests, s.workflow("2.3", "Successful Pended", "pended", "pas/pended.json", "A4")...)
	tests = append(tests, s.notificationTests()...)
	tests = append(tests, s.updateTests()...)
	tests = append(tests, s.mustSupportTests()...)
	tests = append(tests, s.errorTests()...)
	return tests
}

var filterRe = regexp.MustCompile(`(?i)^org-?identifier=\S+`)

// subscriptionTests is group 1: create the Subscription, get the
// handshake.
func (s *session) subscriptionTests() []Test {
	const g = "PAS 1 Subscription Setup"
	return []Test{
		{ID: "pas-1.01", Group: g, Name: "Subscription input conforms to the PAS Subscription profile", Run: func(t *T) {
			raw, err := s.input("pas/subscription.json")
			if err != nil {
				t.Fatalf("%v", err)
			}
			sub, err := decodeObject(raw)
			if err != nil {
				t.Fatalf("input pas/subscription.json is not JSON: %v", err)
			}
			ch := obj(sub["channel"])
			if ch == nil {
				ch = map[string]any{}
				sub["channel"] = ch
			}
			ch["endpoint"] = s.l.notifyURL()
			ch["payload"] = "application/fhir+json"
			var headers []any
			for _, h := range arr(ch["header"]) {
				if hs, _ := h.(string); !strings.HasPrefix(strings.ToLower(hs), "authorization:") {
					headers = append(headers, h)
				}
			}
			ch["header"] = append(headers, "Authorization: Bearer "+s.l.secret)
			s.pas.subscription = sub
			if res := s.v.Validate(mustJSON(sub), pasSubscription); res.HasErrors() {
				t.Failf("PAS spec-57: the Subscription does not conform to %s (%d errors):%s", pasSubscription, len(res.Errors()), issues(res, 6))
			}
			var filters []string
			for _, e := range check.Extensions(obj(sub["_criteria"]), "backport-filter-criteria") {
				filters = append(filters, str(e, "valueString"))
			}
			if len(filters) == 0 || !slices.ContainsFunc(filters, filterRe.MatchString) {
				t.Failf("PAS spec-58: the Subscription's filter criteria %q do not include org-identifier=<sending system identifier>", filters)
			}
		}},
		{ID: "pas-1.02", Group: g, Name: "Server accepts the Subscription (201 Created)", Run: func(t *T) {
			if s.pas.subscription == nil {
				t.Skipf("no Subscription input")
			}
			r, err := s.c.fhir(t.Context(), http.MethodPost, "/Subscription", mustJSON(s.pas.subscription))
			if err != nil {
				t.Fatalf("POST %s/Subscription: %v", s.c.fhirBase, err)
			}
			s.pas.subResp = r
			if r.Status != http.StatusCreated {
				t.Fatalf("PAS spec-54, backport create: POST Subscription answered HTTP %d, want 201: %s", r.Status, snippet(r.Body))
			}
		}},
		{ID: "pas-1.03", Group: g, Name: "Created Subscription is returned with status requested", Run: func(t *T) {
			r := s.pas.subResp
			if r == nil || r.Status/100 != 2 {
				t.Skipf("the Subscription was not created")
			}
			m, err := decodeObject(r.Body)
			if err != nil || str(m, "resourceType") != "Subscription" {
				t.Fatalf("backport 7/25: the create answer is not a Subscription: %s", snippet(r.Body))
			}
			s.pas.subID = str(m, "id")
			if s.pas.subID == "" {
				t.Failf("backport: the created Subscription has no id")
			}
			if st := str(m, "status"); st != "requested" {
				t.Failf("backport 29 (rest-hook): a new Subscription has status %q, want requested until its handshake succeeds", st)
			}
		}},
		{ID: "pas-1.04", Group: g, Name: "Handshake notification is sent and conforms", Run: func(t *T) {
			if s.pas.subID == "" {
				t.Skipf("no Subscription id")
			}
			n, err := s.l.wait(t.Context(), s.cfg.NotificationTimeout, func(n *notification) bool {
				st, ok := n.status()
				return ok && st.Type == "handshake"
			})
			if err != nil {
				t.Fatalf("backport 30/R44: no handshake notification reached %s within %s (received %d notifications)", s.l.notifyURL(), s.cfg.NotificationTimeout, len(s.l.received()))
			}
			s.pas.handshake = n
			st, _ := n.status()
			s.checkNotification(t, n, "handshake")
			if st.Status != "requested" && st.Status != "active" {
				t.Failf("backport: the handshake's SubscriptionStatus.status is %q, want requested", st.Status)
			}
		}},
	}
}

// checkNotification applies the backport rules every notification keeps:
// a history Bundle, a valid SubscriptionStatus first, request/response on
// entries, the status URL, channel headers and Content-Type.
func (s *session) checkNotification(t *T, n *notification, kind string) {
	if n.Bundle == nil {
		t.Fatalf("backport 14: the %s notification body is not JSON: %s", kind, snippet(n.Body))
	}
	if rt, typ := str(n.Bundle, "resourceType"), str(n.Bundle, "type"); rt != "Bundle" || typ != "history" {
		t.Failf("backport 14/R45: the %s notification is a %s of type %q, want a history Bundle", kind, rt, typ)
	}
	st, ok := n.status()
	if !ok {
		t.Fatalf("backport 15/R45: the %s notification's first entry is not a SubscriptionStatus Parameters", kind)
	}
	if s.reg.HasProfile(backportStatus) {
		if res := s.v.Validate(mustJSON(st.Raw), backportStatus); res.HasErrors() {
			t.Failf("backport 15: the %s SubscriptionStatus does not conform to backport-subscription-status-r4:%s", kind, issues(res, 5))
		}
	} else {
		// The backport package is not embedded: its rules, checked by hand.
		_, _, fs := check.Notification(n.Bundle)
		for _, f := range fs {
			t.Failf("backport: the %s notification: %s", kind, f)
		}
	}
	if want := kind; kind == "handshake" && st.Type != want || kind == "event" && st.Type != "event-notification" {
		t.Failf("backport: SubscriptionStatus.type is %q, want %s", st.Type, map[string]string{"handshake": "handshake", "event": "event-notification"}[kind])
	}
	for i, ev := range arr(n.Bundle["entry"]) {
		e := obj(ev)
		if e["request"] == nil || e["response"] == nil {
			t.Failf("backport 28/R45: %s notification entry[%d] lacks request or response (history Bundle entries carry both)", kind, i)
		}
	}
	if s.pas.subID != "" {
		u := str(obj(obj(arr(n.Bundle["entry"])[0])["request"]), "url")
		if !strings.HasSuffix(u, "Subscription/"+s.pas.subID+"/$status") {
			t.Failf("backport R45: the SubscriptionStatus entry's request.url is %q, want …/Subscription/%s/$status", u, s.pas.subID)
		}
	}
	if got := n.Header.Get("Authorization"); got != "Bearer "+s.l.secret {
		t.Failf("backport 26/R45: the %s notification did not carry the channel.header \"Authorization: Bearer …\" (got %q)", kind, redact(got))
	}
	for _, h := range arr(obj(s.pas.subscription["channel"])["header"]) {
		name, val, _ := strings.Cut(fmt.Sprint(h), ":")
		if strings.EqualFold(name, "authorization") {
			continue
		}
		if got := n.Header.Get(strings.TrimSpace(name)); got != strings.TrimSpace(val) {
			t.Failf("backport 26: channel.header %q was not sent as an HTTP header (got %q)", name, got)
		}
	}
	if ct, _, _ := strings.Cut(n.Header.Get("Content-Type"), ";"); strings.TrimSpace(ct) != "application/fhir+json" {
		t.Failf("backport 27: the %s notification's Content-Type is %q, want channel.payload application/fhir+json", kind, ct)
	}
}

func redact(s string) string {
	if len(s) > 14 {
		return s[:14] + "…"
	}
	return s
}

// notificationTests is group 2.3.2: the pended request's final result
// arrives by notification.
func (s *session) notificationTests() []Test {
	const g = "PAS 2.3.2 Pended: Subscription Notification"
	return []Test{
		{ID: "pas-2.3.2.01", Group: g, Name: "Event notification for the pended request arrives", Run: func(t *T) {
			pended := s.pas.subs["pended"]
			if s.pas.subID == "" {
				t.Skipf("no active Subscription (group 1)")
			}
			if pended == nil || pended.resp == nil || pended.resp.Status/100 != 2 {
				t.Skipf("the pended request was not submitted")
			}
			first, _ := readResponse(pended.resp.Body)
			n, err := s.l.wait(t.Context(), s.cfg.NotificationTimeout, func(n *notification) bool {
				return n.At.After(pended.sent) && s.isPendedResult(n, first)
			})
			if err != nil {
				t.Fatalf("PAS spec-60/R43: no event notification for the pended request reached %s within %s of its $submit (%d notifications received in all)", s.l.notifyURL(), s.cfg.NotificationTimeout, len(s.l.received()))
			}
			s.pas.event = n
		}},
		{ID: "pas-2.3.2.02", Group: g, Name: "Event notification conforms (history Bundle, SubscriptionStatus, headers)", Run: func(t *T) {
			n := s.pas.event
			if n == nil {
				t.Skipf("no event notification")
			}
			s.checkNotification(t, n, "event")
			st, _ := n.status()
			if st.Status != "active" {
				t.Failf("backport: an event notification's SubscriptionStatus.status is %q, want active", st.Status)
			}
			if st.EventsSince == "" {
				t.Failf("backport R45: SubscriptionStatus has no events-since-subscription-start")
			}
			if len(st.Events) == 0 {
				t.Failf("backport R45: SubscriptionStatus has no notification-event")
			}
			for i, ev := range st.Events {
				if ev.Number == "" {
					t.Failf("backport R45: notification-event[%d] has no event-number", i)
				}
			}
		}},
		{ID: "pas-2.3.2.03", Group: g, Name: "Event notification follows the full-resource rules", Run: func(t *T) {
			n := s.pas.event
			if n == nil {
				t.Skipf("no event notification")
			}
			st, _ := n.status()
			if st.Topic == "" {
				t.Warnf("backport 101: SubscriptionStatus.topic should be present")
			} else if st.Topic != pasTopic {
				t.Failf("PAS R41: SubscriptionStatus.topic is %q, want %s", st.Topic, pasTopic)
			}
			if len(st.Events) == 0 {
				t.Fatalf("backport 43/R46: no notification-event, so no focus")
			}
			for i, ev := range st.Events {
				if ev.Focus == "" {
					t.Failf("backport 43/R46: full-resource notification-event[%d] has no focus", i)
				} else if resolveEntry(n.Bundle, ev.Focus) == nil {
					t.Failf("backport 44/R46: notification-event[%d].focus %q does not resolve to an entry of the notification Bundle", i, ev.Focus)
				}
			}
			for i, ev := range arr(n.Bundle["entry"])[1:] {
				if obj(ev)["resource"] == nil {
					t.Failf("backport 45/R46: full-resource entry[%d] has no resource", i+1)
				}
			}
		}},
		{ID: "pas-2.3.2.04", Group: g, Name: "Notification focus is the full PAS Response Bundle with the final decision", Run: func(t *T) {
			n := s.pas.event
			if n == nil {
				t.Skipf("no event notification")
			}
			st, _ := n.status()
			if len(st.Events) == 0 || st.Events[0].Focus == "" {
				t.Fatalf("PAS spec-61: no notification-event.focus")
			}
			e := resolveEntry(n.Bundle, st.Events[0].Focus)
			b := obj(e["resource"])
			if str(b, "resourceType") != "Bundle" || str(b, "type") != "collection" {
				t.Fatalf("PAS spec-61: the focus %q is a %s (type %q), want the PAS Response Bundle (a collection with a ClaimResponse first)", st.Events[0].Focus, cmp.Or(str(b, "resourceType"), "missing resource"), str(b, "type"))
			}
			var seqs []int
			if p := s.pas.subs["pended"]; p != nil {
				seqs = p.sequences
			}
			r := s.checkResponse(t, "notified PAS Response Bundle", b, seqs, false)
			if r != nil && r.hasAction("A4") {
				t.Warnf("PAS spec-60: the notified response still pends items (%s); a final decision was expected", strings.Join(r.reviewActions(), ", "))
			}
		}},
	}
}

// isPendedResult reports whether an event notification carries a result
// of the pended request: its ClaimResponse shares an identifier,
// authorization number or request reference with the first answer.
func (s *session) isPendedResult(n *notification, first *pasResponse) bool {
	st, ok := n.status()
	if !ok || st.Type != "event-notification" {
		return false
	}
	if first == nil {
		return true
	}
	want := correlationKeys(first.ClaimResponse)
	for _, ev := range arr(n.Bundle["entry"])[1:] {
		b := obj(obj(ev)["resource"])
		r, err := readBundle(b)
		if err != nil {
			continue
		}
		for k := range correlationKeys(r.ClaimResponse) {
			if want[k] {
				return true
			}
		}
	}
	return false
}

// correlationKeys are the values that tie a ClaimResponse to its request:
// ClaimResponse.request, preAuthRef, identifiers and review numbers.
func correlationKeys(cr map[string]any) map[string]bool {
	keys := map[string]bool{}
	if r := str(obj(cr["request"]), "reference"); r != "" {
		keys["request:"+r] = true
	}
	if v := str(obj(obj(cr["request"])["identifier"]), "value"); v != "" {
		keys["request-id:"+v] = true
	}
	if v := str(cr, "preAuthRef"); v != "" {
		keys["preauth:"+v] = true
	}
	for _, it := range arr(cr["item"]) {
		for _, adj := range arr(obj(it)["adjudication"]) {
			for _, ra := range check.Extensions(obj(adj), "extension-reviewAction") {
				for _, num := range check.Extensions(ra, "number") {
					if v := str(num, "valueString"); v != "" {
						keys["number:"+v] = true
					}
				}
			}
		}
	}
	return keys
}

// updateTests is group 2.4: the kit's four-step update sequence.
func (s *session) updateTests() []Test {
	const g = "PAS 2.4 Claim Updates"
	steps := []struct{ num, key, input, name string }{
		{"1", "update-1", "pas/update-1-initial.json", "initial request"},
		{"2", "update-2", "pas/update-2-add-item.json", "update adding an item"},
		{"3", "update-3", "pas/update-3-modify-cancel.json", "update modifying item 1 and cancelling item 2"},
		{"4", "update-4", "pas/update-4-cancel-all.json", "update cancelling the whole request"},
	}
	var tests []Test
	for _, st := range steps {
		id := "pas-2.4." + st.num + "."
		tests = append(tests,
			Test{ID: id + "01", Group: g, Name: "Input conforms: " + st.name, Run: func(t *T) { s.validateInput(t, st.input, false) }},
			Test{ID: id + "02", Group: g, Name: "Claim/$submit answers 200 or 201: " + st.name, Run: func(t *T) { s.doSubmit(t, st.key, st.input) }},
			Test{ID: id + "03", Group: g, Name: "Response is a conformant PAS Response Bundle: " + st.name, Run: func(t *T) { s.checkSubmitted(t, st.key) }},
		)
	}
	eachStep := func(t *T, f func(step string, sub *submission, r *pasResponse)) {
		n := 0
		for _, st := range steps {
			sub := s.pas.subs[st.key]
			if sub == nil || sub.resp == nil || sub.resp.Status/100 != 2 {
				continue
			}
			r, err := readResponse(sub.resp.Body)
			if err != nil {
				t.Failf("%s: %v", st.name, err)
				continue
			}
			n++
			f(st.name, sub, r)
		}
		if n == 0 {
			t.Skipf("no update step was answered")
		}
	}
	tests = append(tests,
		Test{ID: "pas-2.4.5.01", Group: g, Name: "Every returned itemSequence is a submitted Claim.item.sequence (spec-34)", Run: func(t *T) {
			eachStep(t, func(step string, sub *submission, r *pasResponse) {
				for i, it := range arr(r.ClaimResponse["item"]) {
					seq, ok := check.Number(obj(it)["itemSequence"])
					switch {
					case !ok:
						t.Failf("PAS spec-34: %s: ClaimResponse.item[%d] has no itemSequence (submitted: %s)", step, i, check.JoinInts(slices.Clone(sub.sequences)))
					case !slices.Contains(sub.sequences, seq):
						t.Failf("PAS spec-34: %s: ClaimResponse.item[%d].itemSequence %d is not a submitted item sequence (submitted: %s)", step, i, seq, check.JoinInts(slices.Clone(sub.sequences)))
					}
				}
			})
		}},
		Test{ID: "pas-2.4.5.02", Group: g, Name: "ClaimResponse has current results for every submitted item (spec-46)", Run: func(t *T) {
			eachStep(t, func(step string, sub *submission, r *pasResponse) {
				got := r.sequences()
				var missing []int
				for _, q := range sub.sequences {
					if !slices.Contains(got, q) {
						missing = append(missing, q)
					}
				}
				if len(missing) > 0 {
					t.Failf("PAS spec-46: %s: no ClaimResponse.item for submitted sequence(s) %s (answered: %s)", step, check.JoinInts(missing), check.JoinInts(got))
				}
			})
		}},
	)
	return tests
}

// mustSupportTests is group 3: submissions and inquiries whose answers
// together must show every must-support element of the response profiles.
func (s *session) mustSupportTests() []Test {
	const g1, g2 = "PAS 3.1 Must Support: Claim/$submit", "PAS 3.2 Must Support: Claim/$inquire"
	msInputs := func() []string { return s.inputGlob("pas/must-support-*.json") }
	tests := []Test{
		{ID: "pas-3.1.1.01", Group: g1, Name: "Must-support request Bundles conform (input)", Run: func(t *T) {
			ins := msInputs()
			if len(ins) == 0 {
				t.Skipf("no pas/must-support-*.json inputs")
			}
			for _, in := range ins {
				if res := s.v.ValidatePASRequest(mustRead(s, in)); res.HasErrors() {
					t.Skipf("input %s does not conform to profile-pas-request-bundle:%s", in, issues(res, 5))
				}
			}
		}},
		{ID: "pas-3.1.1.02", Group: g1, Name: "Claim/$submit answers 200 or 201 for every must-support request", Run: func(t *T) {
			ins := msInputs()
			if len(ins) == 0 {
				t.Skipf("no pas/must-support-*.json inputs")
			}
			for _, in := range ins {
				func() {
					sub := &T{ctx: t.ctx, status: Pass}
					done := make(chan struct{})
					go func() { defer close(done); s.doSubmit(sub, "ms:"+in, in) }()
					<-done
					for _, m := range sub.messages {
						t.note(sub.status, "%s", m)
					}
				}()
			}
		}},
		{ID: "pas-3.1.1.03", Group: g1, Name: "Every must-support response is a conformant PAS Response Bundle", Run: func(t *T) {
			n := 0
			for _, in := range msInputs() {
				if sub := s.pas.subs["ms:"+in]; sub != nil && sub.resp != nil && sub.resp.Status/100 == 2 {
					b, err := decodeObject(sub.resp.Body)
					if err != nil {
						t.Failf("%s: the answer is not JSON", in)
						continue
					}
					s.checkResponse(t, "$submit response to "+in, b, sub.sequences, false)
					n++
				}
			}
			if n == 0 {
				t.Skipf("no must-support request was answered")
			}
		}},
		{ID: "pas-3.1.3.01", Group: g1, Name: "PAS Response Bundle must-support elements are all demonstrated", Run: func(t *T) {
			bundles, _ := s.submitResponses()
			if len(bundles) == 0 {
				t.Skipf("no $submit response to inspect")
			}
			if missing := missingMS(responseBundleMS, bundles); len(missing) > 0 {
				t.Failf("PAS conf-6: no $submit response of this run shows these must-support elements of profile-pas-response-bundle: %s", strings.Join(missing, ", "))
			}
		}},
		{ID: "pas-3.1.3.02", Group: g1, Name: "PAS ClaimResponse must-support elements are all demonstrated", Run: func(t *T) {
			_, crs := s.submitResponses()
			if len(crs) == 0 {
				t.Skipf("no ClaimResponse to inspect")
			}
			s.reportMS(t, "profile-claimresponse", claimResponseMS, crs, len(crs))
		}},
		{ID: "pas-3.2.1.01", Group: g2, Name: "Inquiry request Bundle conforms (input)", Run: func(t *T) {
			ins := s.inputGlob("pas/inquire-*.json")
			if len(ins) == 0 {
				t.Skipf("no pas/inquire-*.json inputs")
			}
			for _, in := range ins {
				s.validateInput(t, in, true)
			}
		}},
		{ID: "pas-3.2.1.02", Group: g2, Name: "Claim/$inquire answers 200 or 201 with Parameters of Inquiry Response Bundles", Run: func(t *T) {
			ins := s.inputGlob("pas/inquire-*.json")
			if len(ins) == 0 {
				t.Skipf("no pas/inquire-*.json inputs")
			}
			for _, in := range ins {
				body, _ := s.prepare(t, in)
				r, err := s.c.fhir(t.Context(), http.MethodPost, inquirePath, body)
				if err != nil {
					t.Fatalf("POST %s%s: %v", s.c.fhirBase, inquirePath, err)
				}
				s.pas.inqRsp = r
				if r.Status != http.StatusOK && r.Status != http.StatusCreated {
					t.Failf("PAS R2: POST Claim/$inquire with %s answered HTTP %d, want 200 or 201: %s", in, r.Status, snippet(r.Body))
					continue
				}
				m, err := decodeObject(r.Body)
				if err != nil {
					t.Failf("PAS R2: the $inquire answer to %s is not JSON: %s", in, snippet(r.Body))
					continue
				}
				if rt := str(m, "resourceType"); rt != "Parameters" {
					t.Failf("PAS R2 (FHIR-55394): $inquire answered a %s, want Parameters with 0..* \"return\" Inquiry Response Bundles (PAS 2.2 changed the output from a Bundle)", cmp.Or(rt, "resource without resourceType"))
					continue
				}
				for i, p := range arr(m["parameter"]) {
					pm := obj(p)
					if name := str(pm, "name"); name != "return" {
						t.Failf("PAS R2: Parameters.parameter[%d].name is %q, want return (OperationDefinition Claim-inquiry)", i, name)
					}
					res := obj(pm["resource"])
					if str(res, "resourceType") != "Bundle" {
						t.Failf("PAS R2: Parameters.parameter[%d] carries a %s, want a Bundle", i, cmp.Or(str(res, "resourceType"), "no resource"))
						continue
					}
					s.pas.inq = append(s.pas.inq, &pasResponse{&check.PASAnswer{Bundle: res}})
				}
			}
			if len(s.pas.inq) == 0 && !t.Failed() {
				t.Failf("PAS 3.2.1.02: no inquiry returned any Inquiry Response Bundle; the inquiry inputs should match requests submitted earlier in this run (by member id and provider NPI, spec-53)")
			}
		}},
		{ID: "pas-3.2.1.03", Group: g2, Name: "Every returned Bundle is a conformant PAS Inquiry Response Bundle", Run: func(t *T) {
			if len(s.pas.inq) == 0 {
				t.Skipf("no Inquiry Response Bundle returned")
			}
			for i, r := range s.pas.inq {
				if c := s.checkResponse(t, fmt.Sprintf("inquiry return[%d]", i), r.Bundle, nil, true); c != nil {
					s.pas.inq[i] = c
				}
				if cr := s.pas.inq[i].ClaimResponse; cr != nil && cr["request"] == nil {
					t.Failf("PAS spec-44: inquiry return[%d] ClaimResponse has no request (a Claim reference or a data-absent-reason)", i)
				}
			}
		}},
		{ID: "pas-3.2.3.01", Group: g2, Name: "PAS Claim Inquiry Response must-support elements are all demonstrated", Run: func(t *T) {
			var crs []map[string]any
			for _, r := range s.pas.inq {
				if r.ClaimResponse != nil {
					crs = append(crs, r.ClaimResponse)
				}
			}
			if len(crs) == 0 {
				t.Skipf("no inquiry ClaimResponse to inspect")
			}
			s.reportMS(t, "profile-claiminquiryresponse", inquiryResponseMS, crs, len(crs))
		}},
	}
	return tests
}

// reportMS checks conf-6 over the run's ClaimResponses. Core elements —
// the ClaimResponse's own data, its items and their decisions, process
// notes — fail when no response shows them. Situational ones (extensions,
// addItem for modified authorizations, errors, requests for more
// information, a ClaimResponse-level adjudication) appear only in the
// cases that call for them, which a server's business rules decide; they
// warn, or fail with Config.StrictMustSupport as Inferno's must-support
// tests do.
func (s *session) reportMS(t *T, profile string, list []msElement, resources []map[string]any, n int) {
	var hard, soft []string
	for _, m := range missingMS(list, resources) {
		if why := outOfContextMS[m]; why != "" {
			t.Logf("PAS conf-6: %s is not expected: %s", m, why)
			continue
		}
		if s.cfg.StrictMustSupport || !situational(m) {
			hard = append(hard, m)
		} else {
			soft = append(soft, m)
		}
	}
	if len(hard) > 0 {
		t.Failf("PAS conf-6: none of the %d ClaimResponses of this run shows these must-support elements of %s (a server SHALL be capable of returning each): %s", n, profile, strings.Join(hard, ", "))
	}
	if len(soft) > 0 {
		t.Warnf("PAS conf-6: situational must-support elements of %s not shown by any of the %d ClaimResponses (Inferno's must-support tests fail on these; --strict-must-support fails here too): %s", profile, n, strings.Join(soft, ", "))
	}
}

// outOfContextMS are must-support slices of the PAS 2.2.1 response
// profiles that no conformant response can show: the profile places an
// extension where the extension's own context does not allow it, so
// showing the slice is an error to any validator that checks contexts.
// Each slice is optional, and Priora leaves it out (issue #17 item 4).
var outOfContextMS = map[string]string{
	"ClaimResponse.adjudication":                              "a header-level adjudication would carry only the review action, which cannot be placed there (see ClaimResponse.adjudication.extension:reviewAction)",
	"ClaimResponse.extension:authorizedProvider":              "extension-itemAuthorizedProvider's context is ClaimResponse.item (the provider is shown there)",
	"ClaimResponse.item.extension:communicatedDiagnosis":      "extension-communicatedDiagnosis's context is Claim.item, ExplanationOfBenefit.item and CommunicationRequest.payload",
	"ClaimResponse.adjudication.extension:reviewAction":       "extension-reviewActionCode's context is item and addItem adjudication only (the review action is shown per item)",
	"ClaimResponse.addItem.extension:certificationType":       "extension-certificationType's context is Claim, Claim.item and ExplanationOfBenefit",
	"ClaimResponse.addItem.extension:requestType":             "extension-serviceItemRequestType's context is Claim.item",
	"ClaimResponse.addItem.extension:productOrServiceCodeEnd": "extension-productOrServiceCodeEnd's context is Claim.item and the ClaimResponse root",
	"ClaimResponse.addItem.extension:revenueUnitRateLimit":    "extension-revenueUnitRateLimit's context is Claim.item and the ClaimResponse root",
}

// situational reports whether a must-support element appears only in
// particular cases (see reportMS).
func situational(id string) bool {
	if strings.HasSuffix(id, "item.adjudication.extension:reviewAction") {
		return false // the decision itself
	}
	for _, k := range []string{"extension:", "ClaimResponse.addItem", "ClaimResponse.error", "ClaimResponse.communicationRequest", "ClaimResponse.adjudication"} {
		if strings.Contains(id, k) {
			return true
		}
	}
	return false
}

// submitResponses collects the response Bundles and ClaimResponses of
// every $submit and event notification of the run.
func (s *session) submitResponses() (bundles, crs []map[string]any) {
	for _, sub := range s.pas.subs {
		if sub.resp == nil || sub.resp.Status/100 != 2 {
			continue
		}
		if r, err := readResponse(sub.resp.Body); err == nil {
			bundles = append(bundles, r.Bundle)
			crs = append(crs, r.ClaimResponse)
		}
	}
	if n := s.pas.event; n != nil {
		for _, ev := range arr(n.Bundle["entry"])[1:] {
			if r, err := readBundle(obj(obj(ev)["resource"])); err == nil {
				bundles = append(bundles, r.Bundle)
				crs = append(crs, r.ClaimResponse)
			}
		}
	}
	return bundles, crs
}

func mustRead(s *session, name string) []byte {
	b, _ := s.input(name)
	return b
}

// errorTests is group 4: an empty Bundle gets a 4xx OperationOutcome.
func (s *session) errorTests() []Test {
	const g = "PAS 4 Error Handling"
	check := func(t *T, path string) {
		body, err := s.input("pas/error-empty-bundle.json")
		if err != nil {
			t.Fatalf("%v", err)
		}
		r, err := s.c.fhir(t.Context(), http.MethodPost, path, body)
		if err != nil {
			t.Fatalf("POST %s%s: %v", s.c.fhirBase, path, err)
		}
		if r.Status/100 == 2 {
			t.Failf("PAS spec-35/R66: POST Claim%s with an empty Bundle answered HTTP %d, want a 4xx error: %s", strings.TrimPrefix(path, "/Claim"), r.Status, snippet(r.Body))
		}
		m, err := decodeObject(r.Body)
		if rt := str(m, "resourceType"); err != nil || rt != "OperationOutcome" {
			t.Failf("PAS spec-35/R66: the error answer to Claim%s is not an OperationOutcome (got %s)", strings.TrimPrefix(path, "/Claim"), snippet(r.Body))
		} else if len(arr(m["issue"])) == 0 {
			t.Failf("PAS spec-35: the OperationOutcome has no issue explaining the error")
		}
		if r.Elapsed > slowSubmit {
			t.Warnf("PAS spec-7: the answer took %s, more than 15 s", r.Elapsed.Round(time.Millisecond))
		}
	}
	return []Test{
		{ID: "pas-4.01", Group: g, Name: "Claim/$submit refuses an empty Bundle with a 4xx OperationOutcome", Run: func(t *T) { check(t, submitPath) }},
		{ID: "pas-4.02", Group: g, Name: "Claim/$inquire refuses an empty Bundle with a 4xx OperationOutcome", Run: func(t *T) { check(t, inquirePath) }},
	}
}

// capabilityTest reads the CapabilityStatement: the PAS operations and
// the Subscription support PAS requires servers to declare.
func (s *session) capabilityTest() Test {
	return Test{ID: "pas-0.01", Group: "PAS 0 Capability Statement", Name: "CapabilityStatement declares $submit, $inquire and PAS Subscriptions", Run: func(t *T) {
		r, err := s.c.fhir(t.Context(), http.MethodGet, "/metadata", nil)
		if err != nil {
			t.Fatalf("GET %s/metadata: %v", s.c.fhirBase, err)
		}
		cs, err := decodeObject(r.Body)
		if r.Status != http.StatusOK || err != nil || str(cs, "resourceType") != "CapabilityStatement" {
			t.Fatalf("FHIR R4 capabilities: GET /metadata answered HTTP %d without a CapabilityStatement: %s", r.Status, snippet(r.Body))
		}
		ops := map[string]bool{}
		var sub map[string]any
		for _, rest := range arr(cs["rest"]) {
			for _, rv := range arr(obj(rest)["resource"]) {
				res := obj(rv)
				switch str(res, "type") {
				case "Claim":
					for _, o := range arr(res["operation"]) {
						ops[str(obj(o), "name")] = true
						def := str(obj(o), "definition")
						ops[def[strings.LastIndex(def, "/")+1:]] = true
					}
				case "Subscription":
					sub = res
				}
			}
		}
		if !ops["submit"] && !ops["Claim-submit"] {
			t.Failf("PAS R1: the CapabilityStatement declares no Claim $submit operation")
		}
		if !ops["inquire"] && !ops["Claim-inquiry"] {
			t.Failf("PAS R2: the CapabilityStatement declares no Claim $inquire operation")
		}
		if sub == nil {
			t.Fatalf("PAS spec-55: the CapabilityStatement declares no Subscription resource")
		}
		have := map[string]bool{}
		for _, in := range arr(sub["interaction"]) {
			have[str(obj(in), "code")] = true
		}
		for _, code := range []string{"create", "update", "delete"} {
			if !have[code] {
				t.Failf("PAS spec-55/R4: the CapabilityStatement's Subscription lacks the %s interaction", code)
			}
		}
		topic := false
		for _, e := range check.Extensions(sub, "capabilitystatement-subscriptiontopic-canonical") {
			topic = topic || str(e, "valueCanonical") == pasTopic
		}
		if !topic {
			t.Warnf("backport 57/R11: the Subscription resource should name %s in a capabilitystatement-subscriptiontopic-canonical extension", pasTopic)
		}
	}}
}

// markTestData adds the security label HTEST (HL7 v3 ActReason: test health
// data) to a Bundle's meta, once.
func markTestData(b map[string]any) {
	meta := obj(b["meta"])
	if meta == nil {
		meta = map[string]any{}
		b["meta"] = meta
	}
	sec := arr(meta["security"])
	for _, c := range sec {
		if str(obj(c), "system") == htestSystem && str(obj(c), "code") == "HTEST" {
			return
		}
	}
	meta["security"] = append(sec, map[string]any{"system": htestSystem, "code": "HTEST", "display": "test health data"})
}

const htestSystem = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
