package desk_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/priora/priora/internal/testenv"
)

// The request page shows each coverage criterion with its outcome and
// evidence, and the rules version that decided.
func TestTaskShowsCriteria(t *testing.T) {
	e := start(t, testenv.WithNow(func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }))
	r := e.Post(submitPath, testenv.Fixture(t, "policies/mri-lumbar-not-met.json"))
	if r.Status != http.StatusOK {
		t.Fatalf("$submit: %d %s", r.Status, errorsOf(r.Body))
	}
	var b struct {
		Entry []struct {
			Resource struct {
				Identifier []struct{ System, Value string } `json:"identifier"`
			} `json:"resource"`
		} `json:"entry"`
	}
	_ = json.Unmarshal(r.Body, &b)
	id := ""
	for _, x := range b.Entry[0].Resource.Identifier {
		if x.System == "urn:priora:authorization" {
			id = x.Value
		}
	}
	if id == "" {
		t.Fatal("no authorization id in the response")
	}
	br := newBrowser(t, e)
	br.mustSignIn()
	page := br.get("/desk/tasks/" + id)
	if page.Status != http.StatusOK {
		t.Fatalf("task page: %d", page.Status)
	}
	for _, want := range []string{
		"Coverage criteria (3)",
		"Not met:</strong> Low back pain (ICD-10-CM M54.5x) is a diagnosis of the request",
		"<code>conservative-therapy</code>",
		"Evidence: Bundle.entry[0].resource.diagnosis[0]",
		"Rules version 2026.12-sample@",
	} {
		if !strings.Contains(page.Body, want) && !strings.Contains(page.Body, htmlEscape(want)) {
			t.Errorf("task page lacks %q", want)
		}
	}
}
