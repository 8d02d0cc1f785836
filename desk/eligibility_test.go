package desk_test

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
)

// kitMember is the PAS kit's patient as the payer's roster knows them:
// member id MEM-1234567, born on birthDate, covered since 2015.
func kitMember(birthDate string) []byte {
	return []byte(`{"resourceType":"Organization","id":"insurer","identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1234567893"}],"name":"Maryland Capital"}
{"resourceType":"Patient","id":"kit","name":[{"family":"SMITH","given":["JOE"]}],"birthDate":"` + birthDate + `","gender":"male"}
{"resourceType":"Coverage","id":"kit-cov","status":"active","type":{"text":"Medicare Advantage"},"identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MB"}]},"system":"http://davinci-pas.org/MEMBERID","value":"MEM-1234567"}],"subscriberId":"12345678901","relationship":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/subscriber-relationship","code":"self"}]},"beneficiary":{"reference":"Patient/kit"},"payor":[{"reference":"Organization/insurer"}],"period":{"start":"2015-01-01"},"class":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/coverage-class","code":"plan"}]},"value":"MCI-MA-HMO","name":"Medicare Advantage HMO"}]}
`)
}

func postRoster(t *testing.T, e *testenv.Env, body []byte) {
	t.Helper()
	if r := e.Post("/admin/members", body, "Content-Type", "application/fhir+ndjson"); r.Status != http.StatusOK {
		t.Fatalf("import: %d %s", r.Status, r.Body)
	}
}

// TestEligibilityOnTheDesk: in warn mode requests are decided and the
// eligibility result is shown to reviewers beside what the EHR sent; the
// queue filters on it.
func TestEligibilityOnTheDesk(t *testing.T) {
	e := start(t, testenv.WithConfig(func(c *app.Config) { c.Eligibility = "warn" }))
	roster, err := os.ReadFile("../testdata/members/roster.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	postRoster(t, e, roster)
	notFound := submit(t, e, "elig-not-found")
	postRoster(t, e, kitMember("1987-02-21"))
	mismatch := submit(t, e, "elig-mismatch")
	postRoster(t, e, kitMember("1987-02-20"))
	eligible := submit(t, e, "elig-ok")

	b := newBrowser(t, e)
	b.mustSignIn()
	p := b.get("/desk/tasks/" + notFound)
	for _, want := range []string{"Eligibility (payer's member roster)", "Member not found", "warn mode", "Not found"} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("not-found request page lacks %q", want)
		}
	}
	p = b.get("/desk/tasks/" + mismatch)
	for _, want := range []string{"Demographics differ", "birthDate", "1987-02-20", "1987-02-21", "MEM-1234567"} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("mismatch request page lacks %q", want)
		}
	}
	p = b.get("/desk/tasks/" + eligible)
	for _, want := range []string{"Eligible", "MCI-MA-HMO", "Medicare Advantage", "2015-01-01 to open", "member-id"} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("eligible request page lacks %q", want)
		}
	}
	// Beside it, what the EHR sent: the request's own Coverage card.
	if !strings.Contains(p.Body, "12345678901") {
		t.Errorf("the EHR's coverage is not shown")
	}

	for filter, want := range map[string][]string{
		"":             {notFound, mismatch, eligible},
		"not-eligible": {notFound, mismatch},
		"eligible":     {eligible},
		"unchecked":    nil,
	} {
		q := b.get("/desk/?eligibility=" + filter)
		if q.Status != http.StatusOK {
			t.Fatalf("queue %q: %d", filter, q.Status)
		}
		for _, id := range []string{notFound, mismatch, eligible} {
			listed := strings.Contains(q.Body, "/desk/tasks/"+id)
			if listed != contains(want, id) {
				t.Errorf("filter %q: %s listed = %v", filter, id, listed)
			}
		}
	}
	if q := b.get("/desk/?eligibility=bogus"); q.Status != http.StatusBadRequest {
		t.Errorf("bad filter: %d", q.Status)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
