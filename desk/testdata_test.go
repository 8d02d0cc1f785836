package desk_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/priora/priora/internal/testenv"
)

// htest marks a request Bundle as test data (meta.security HTEST).
func htest(t *testing.T, bundle []byte) []byte {
	t.Helper()
	var b map[string]any
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	b["meta"] = map[string]any{"security": []any{map[string]any{
		"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST"}}}
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTestDataKeptApart: a request marked HTEST is answered like any other,
// but the work queue's default view, the review API's default listing, the
// CMS-0057-F figures and the queue metrics leave it out.
func TestTestDataKeptApart(t *testing.T) {
	e := start(t)
	real := submit(t, e, "real-1")
	r := e.Post(submitPath, htest(t, pendedRequest(t, "htest-1")))
	if r.Status != http.StatusOK {
		t.Fatalf("HTEST $submit: %d %.2000s", r.Status, errorsOf(r.Body))
	}
	if got := reviewActions(t, r.Body); got[1] != "A4" {
		t.Fatalf("the HTEST request was not answered like a real one: review actions %v", got)
	}
	testID := testenv.AuthorizationID(t, r.Body)

	// The review API.
	for _, c := range []struct {
		query      string
		want, not  []string
		wantTestOn string
	}{
		{"", []string{real}, []string{testID}, ""},
		{"?test=include", []string{real, testID}, nil, testID},
		{"?test=only", []string{testID}, []string{real}, testID},
	} {
		r := e.Get("/review/tasks" + c.query)
		if r.Status != http.StatusOK {
			t.Fatalf("GET /review/tasks%s: %d %s", c.query, r.Status, r.Body)
		}
		var got struct {
			Tasks []struct {
				ID   string `json:"id"`
				Test bool   `json:"test"`
			} `json:"tasks"`
		}
		if err := json.Unmarshal(r.Body, &got); err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, task := range got.Tasks {
			ids[task.ID] = true
			if task.Test != (task.ID == c.wantTestOn) {
				t.Errorf("/review/tasks%s: task %s test = %v", c.query, task.ID, task.Test)
			}
		}
		for _, id := range c.want {
			if !ids[id] {
				t.Errorf("/review/tasks%s lacks %s", c.query, id)
			}
		}
		for _, id := range c.not {
			if ids[id] {
				t.Errorf("/review/tasks%s lists %s", c.query, id)
			}
		}
	}
	if r := e.Get("/review/tasks?test=yes"); r.Status != http.StatusBadRequest {
		t.Errorf("test=yes: %d, want 400", r.Status)
	}

	// The desk.
	b := newBrowser(t, e)
	b.mustSignIn()
	if p := b.get("/desk/"); !strings.Contains(p.Body, real) || strings.Contains(p.Body, testID) {
		t.Errorf("the default work queue must list %s and leave out the test request %s", real, testID)
	}
	if p := b.get("/desk/?test=include"); !strings.Contains(p.Body, testID) || !strings.Contains(p.Body, `class="badge test-data"`) {
		t.Errorf("the queue with test=include lacks the test request %s or its badge", testID)
	}

	// The CMS-0057-F figures.
	p := b.get("/desk/api/metrics")
	var m struct {
		PA struct {
			All struct {
				Received int `json:"received"`
			} `json:"all"`
		} `json:"priorAuthorization"`
	}
	if err := json.Unmarshal([]byte(p.Body), &m); err != nil || m.PA.All.Received != 1 {
		t.Errorf("CMS figures count %d requests (err %v), want 1: test data is not reported", m.PA.All.Received, err)
	}

	// The Prometheus queue depth.
	families, err := e.App.Metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	depth := -1.0
	for _, f := range families {
		if f.GetName() == "priora_review_queue_depth" {
			depth = f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	if depth != 1 {
		t.Errorf("priora_review_queue_depth = %v, want 1 (the test request left out)", depth)
	}
}
