package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/store"
)

// TestPrincipals: only the payer decides. A provider client cannot review
// (not even its own request, not even with a hand-edited registration), a
// payer client reviews every provider tenant's requests but never submits,
// and a decision records the payer client and the reviewer it names.
func TestPrincipals(t *testing.T) {
	s := startSecure(t)
	ctx := context.Background()
	tokA := s.Token(s.keyA, clientA, scopesAll)
	tokB := s.Token(s.keyB, clientB, scopesAll)
	for _, tok := range []string{tokA, tokB} {
		if r := s.Post(submitPath, pendedRequest(t), testenv.Bearer(tok)...); r.Status != 200 {
			t.Fatalf("submit: %d %s", r.Status, r.Body)
		}
	}
	payer := s.payerToken(t)

	// A registry edited by hand: a provider client holding priora/review.
	legacy := store.Client{ID: "client-legacy", Org: "org-a", Kind: auth.KindProvider, JWKS: string(s.keyA.JWKS),
		Scopes: []string{"system/Claim.c", auth.ScopeReview, auth.ScopeAdmin}, Created: time.Now(), Updated: time.Now()}
	if err := s.App.Store.PutClient(ctx, &legacy); err != nil {
		t.Fatal(err)
	}

	t.Run("a provider client's review token is refused at the token endpoint", func(t *testing.T) {
		r := s.TokenRequest(s.keyA.Sign(t, nil, s.AssertionClaims("client-legacy")), "priora/review")
		if r.Status != 400 || !strings.Contains(string(r.Body), "invalid_scope") || !strings.Contains(string(r.Body), "payer clients") {
			t.Errorf("%d %s, want 400 invalid_scope naming payer clients", r.Status, r.Body)
		}
		r = s.TokenRequest(s.keyA.Sign(t, nil, s.AssertionClaims("client-legacy")), "system/Claim.c priora/review priora/admin")
		var tr auth.TokenResponse
		json.Unmarshal(r.Body, &tr)
		if r.Status != 200 || tr.Scope != "system/Claim.c" {
			t.Errorf("%d scope %q, want only system/Claim.c granted", r.Status, tr.Scope)
		}
	})

	t.Run("provider clients cannot use the review API", func(t *testing.T) {
		for _, tok := range []string{tokA, tokB} {
			r := s.Get("/review/tasks", testenv.Bearer(tok)...)
			if r.Status != 403 || !strings.Contains(string(r.Body), "OperationOutcome") {
				t.Errorf("%d %s, want 403 OperationOutcome", r.Status, r.Body)
			}
		}
	})

	var tasks taskList
	t.Run("the payer client sees every provider tenant's tasks", func(t *testing.T) {
		r := s.Get("/review/tasks", testenv.Bearer(payer)...)
		if r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		json.Unmarshal(r.Body, &tasks)
		if len(tasks.Tasks) != 2 {
			t.Fatalf("payer queue: %d tasks, want 2 (org-a's and org-b's): %s", len(tasks.Tasks), r.Body)
		}
	})
	if len(tasks.Tasks) != 2 {
		t.FailNow()
	}

	t.Run("the payer client never submits", func(t *testing.T) {
		tok := s.Token(s.keyAdmin, payerUM, "system/Claim.c")
		r := s.Post(submitPath, pendedRequest(t), testenv.Bearer(tok)...)
		if r.Status != 403 || !strings.Contains(string(r.Body), "OperationOutcome") || !strings.Contains(string(r.Body), "payer client") {
			t.Errorf("%d %s, want 403 OperationOutcome", r.Status, r.Body)
		}
	})

	task := "/review/tasks/" + tasks.Tasks[0].ID
	decision := []byte(`{"reviewer":{"npi":"1982947230","name":"Dana Reyes"},"items":[{"sequence":1,"action":"approve"},{"sequence":2,"action":"approve"}]}`)

	t.Run("a payer client without a named reviewer cannot decide", func(t *testing.T) {
		r := s.Post(task+"/decision", []byte(`{"reviewer":{},"items":[{"sequence":1,"action":"approve"}]}`), testenv.Bearer(payer)...)
		if r.Status != 400 {
			t.Errorf("%d %s, want 400", r.Status, r.Body)
		}
	})

	t.Run("the decision records the payer client and the reviewer it names", func(t *testing.T) {
		r := s.Post(task+"/decision", decision, testenv.Bearer(payer)...)
		if r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		r = s.Get(task, testenv.Bearer(payer)...)
		var got struct {
			Items []struct{ Decision store.Decision }
		}
		json.Unmarshal(r.Body, &got)
		if len(got.Items) == 0 {
			t.Fatalf("task: %d %s", r.Status, r.Body)
		}
		d := got.Items[0].Decision
		want := store.Decision{Action: "approve", By: "reviewer:1982947230", ReviewerNPI: "1982947230", ReviewerName: "Dana Reyes", Principal: "client:" + payerUM}
		if diff := cmp.Diff(want, store.Decision{Action: d.Action, By: d.By, ReviewerNPI: d.ReviewerNPI, ReviewerName: d.ReviewerName, Principal: d.Principal}); diff != "" {
			t.Errorf("decision (-want +got):\n%s", diff)
		}
		admin := s.Token(s.keyAdmin, "admin", auth.ScopeAdmin)
		a := s.Get("/admin/audit?client="+payerUM, testenv.Bearer(admin)...)
		var recs struct{ Records []store.AuditRecord }
		json.Unmarshal(a.Body, &recs)
		found := false
		for _, x := range recs.Records {
			if strings.HasSuffix(x.Route, "/decision") && x.Status == 200 {
				found = strings.Contains(x.Detail, "reviewer Dana Reyes (NPI 1982947230) on behalf of via client "+payerUM)
			}
		}
		if !found {
			t.Errorf("no audit record of the decision naming the reviewer and the client: %s", a.Body)
		}
	})

	t.Run("a payer client demoted to provider loses the review API at once", func(t *testing.T) {
		um := store.Client{ID: "payer-um2", Org: "payer", Kind: auth.KindPayer, Scopes: []string{auth.ScopeReview}}
		um = s.RegisterClient(um, s.keyAdmin)
		tok := s.Token(s.keyAdmin, um.ID, auth.ScopeReview)
		if r := s.Get("/review/tasks", testenv.Bearer(tok)...); r.Status != 200 {
			t.Fatalf("before: %d %s", r.Status, r.Body)
		}
		um.Kind = auth.KindProvider // a hand edit of the registry
		if err := s.App.Store.PutClient(ctx, &um); err != nil {
			t.Fatal(err)
		}
		if r := s.Get("/review/tasks", testenv.Bearer(tok)...); r.Status != 403 {
			t.Errorf("after: %d %s, want 403", r.Status, r.Body)
		}
	})
}

// TestTokenRecheck: an access token is checked against the client's
// current registration on every request; narrowing its scopes or disabling
// it takes effect on the very next request with the same token.
func TestTokenRecheck(t *testing.T) {
	s := startSecure(t)
	ctx := context.Background()
	c := s.RegisterClient(store.Client{ID: "client-recheck", Org: "org-r", Scopes: []string{"system/Subscription.rs", "system/Claim.c"}}, s.keyA)
	tok := s.Token(s.keyA, c.ID, "system/Subscription.rs system/Claim.c")
	search := func() *testenv.Response { return s.Get("/fhir/Subscription", testenv.Bearer(tok)...) }
	if r := search(); r.Status != 200 {
		t.Fatalf("before: %d %s", r.Status, r.Body)
	}
	c.Scopes = []string{"system/Claim.c"}
	if err := s.App.Store.PutClient(ctx, &c); err != nil {
		t.Fatal(err)
	}
	if r := search(); r.Status != http.StatusForbidden || !strings.Contains(r.Header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("after narrowing: %d %s, want 403 insufficient_scope", r.Status, r.Body)
	}
	if err := s.App.Store.SetClientDisabled(ctx, c.ID, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	if r := s.Post(submitPath, pendedRequest(t), testenv.Bearer(tok)...); r.Status != http.StatusUnauthorized {
		t.Errorf("after disabling: %d %s, want 401", r.Status, r.Body)
	}
}

// familyMember is one person of a family sharing one subscriber id.
type familyMember struct {
	memberID, given, birthDate string
}

const (
	familySubscriberID = "FAM-5550100"
	familyMemberSystem = "http://payer.example.org/member-id"
)

var (
	subscriber = familyMember{"FAM-5550100-01", "JOE", "1987-02-20"}
	dependent1 = familyMember{"FAM-5550100-02", "ANNA", "2012-05-01"}
	dependent2 = familyMember{"FAM-5550100-03", "LEO", "2015-09-09"}
)

// asFamily makes a PAS Bundle (request or inquiry) about member m: the
// Patient's and the Coverage's member id, name and birth date are m's, the
// Coverage's subscriber id the family's; tag keeps submissions apart.
func asFamily(t *testing.T, body []byte, m familyMember, tag string, withMemberID bool) []byte {
	return edit(t, body, func(b map[string]any) {
		if id, ok := b["identifier"].(map[string]any); ok {
			id["value"] = fmt.Sprint(id["value"]) + "-" + tag
		}
		mb := []any{map[string]any{"system": familyMemberSystem, "value": m.memberID, "type": map[string]any{"coding": []any{
			map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}}}}}
		for _, en := range b["entry"].([]any) {
			r := en.(map[string]any)["resource"].(map[string]any)
			switch r["resourceType"] {
			case "Claim":
				for _, x := range r["identifier"].([]any) {
					x.(map[string]any)["value"] = fmt.Sprint(x.(map[string]any)["value"]) + "-" + tag
				}
			case "Patient":
				r["name"] = []any{map[string]any{"family": "SMITH", "given": []any{m.given}}}
				r["birthDate"] = m.birthDate
				r["identifier"] = mb
				if !withMemberID { // the EHR's record number only
					r["identifier"] = []any{map[string]any{"system": "http://ehr.example.org/mrn", "value": "MRN-" + m.given,
						"type": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}}}}}
				}
			case "Coverage":
				r["subscriberId"] = familySubscriberID
				r["identifier"] = mb
				if !withMemberID { // filed under the subscriber's number, as dependents often are
					r["identifier"] = []any{map[string]any{"system": familyMemberSystem, "value": familySubscriberID, "type": map[string]any{"coding": []any{
						map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}}}}}
				}
			}
		}
	})
}

// TestInquireFamily: a subscriber and two dependents share one subscriber
// id; tenants A and B inquire. An inquiry is answered only with requests
// of its own patient: a member id with its system, or the subscriber id
// together with the patient's name and birth date (PAS spec-53).
func TestInquireFamily(t *testing.T) {
	s := startSecure(t)
	tokA := s.Token(s.keyA, clientA, scopesAll)
	tokB := s.Token(s.keyB, clientB, scopesAll)
	request := testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json")
	for _, sub := range []struct {
		tok string
		m   familyMember
	}{{tokA, subscriber}, {tokA, dependent1}, {tokB, dependent2}} {
		if r := s.Post(submitPath, asFamily(t, request, sub.m, sub.m.memberID, true), testenv.Bearer(sub.tok)...); r.Status != 200 {
			t.Fatalf("submit for %s: %d %s", sub.m.given, r.Status, r.Body)
		}
	}
	// Any service of this patient and provider (spec-43), no authorization number.
	inquiry := edit(t, testenv.Fixture(t, "pas/kit/must_support_pa_inquire_request_payload.1.json"), func(b map[string]any) {
		c := claim(b)
		c["item"] = []any{itemWithCode(c, "http://terminology.hl7.org/CodeSystem/data-absent-reason", "not-applicable")}
		var exts []any
		for _, e := range c["extension"].([]any) {
			if u := e.(map[string]any)["url"].(string); !strings.HasSuffix(u, "authorizationNumber") && !strings.HasSuffix(u, "administrationReferenceNumber") {
				exts = append(exts, e)
			}
		}
		c["extension"] = exts
		// The kit labels its inquiry a request Bundle, whose Claim needs item extensions.
		b["meta"] = map[string]any{"profile": []any{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-pas-inquiry-request-bundle"}}
	})
	otherSystem := func(body []byte) []byte { // and another subscriber id
		body = bytes.ReplaceAll(body, []byte(`"`+familySubscriberID+`"`), []byte(`"OTHER-1"`))
		return bytes.ReplaceAll(body, []byte(familyMemberSystem), []byte("http://another-payer.example.org/member-id"))
	}
	tests := []struct {
		name string
		body []byte
		want []familyMember
	}{
		{"the subscriber by member id", asFamily(t, inquiry, subscriber, "q", true), []familyMember{subscriber}},
		{"a dependent by member id", asFamily(t, inquiry, dependent1, "q", true), []familyMember{dependent1}},
		{"the other tenant's dependent by member id (spec-52)", asFamily(t, inquiry, dependent2, "q", true), []familyMember{dependent2}},
		{"the subscriber by subscriber id, name and birth date", asFamily(t, inquiry, subscriber, "q", false), []familyMember{subscriber}},
		{"a dependent by subscriber id, name and birth date", asFamily(t, inquiry, dependent2, "q", false), []familyMember{dependent2}},
		{"the subscriber id with a stranger's name and birth date", asFamily(t, inquiry, familyMember{"X", "MAX", "1990-01-01"}, "q", false), nil},
		{"the subscriber id with a dependent's name but another birth date", asFamily(t, inquiry, familyMember{"X", "ANNA", "2012-05-02"}, "q", false), nil},
		{"a member id under another system", otherSystem(asFamily(t, inquiry, subscriber, "q", true)), nil},
		{"a member id with another person's birth date", asFamily(t, inquiry, familyMember{subscriber.memberID, "JOE", "1960-01-01"}, "q", true), nil},
	}
	for _, tt := range tests {
		for _, tok := range []struct{ name, tok string }{{"A", tokA}, {"B", tokB}} {
			t.Run(tt.name+" asked by "+tok.name, func(t *testing.T) {
				r := s.Post(inquirePath, tt.body, testenv.Bearer(tok.tok)...)
				if r.Status != 200 {
					t.Fatalf("%d %s", r.Status, r.Body)
				}
				returns := returnBundles(t, r.Body)
				var got []string
				for _, b := range returns {
					for _, m := range []familyMember{subscriber, dependent1, dependent2} {
						if bytes.Contains(b, []byte(m.memberID)) {
							got = append(got, m.given)
						}
					}
				}
				var want []string
				for _, m := range tt.want {
					want = append(want, m.given)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("patients answered (-want +got):\n%s", diff)
				}
			})
		}
	}
}
