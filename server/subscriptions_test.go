package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/priora/priora/internal/testenv"
)

// subscriptionBody is a subscription fixture pointed at endpoint (a test
// server on 127.0.0.1), after edit.
func subscriptionBody(t *testing.T, name, endpoint string, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(testenv.Fixture(t, "subscriptions/"+name), &m); err != nil {
		t.Fatal(err)
	}
	m["channel"].(map[string]any)["endpoint"] = endpoint
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// okEndpoint accepts every notification.
func okEndpoint(t *testing.T) string {
	srv := httptest.NewServer(testenv.CheckedEndpoint(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})))
	t.Cleanup(srv.Close)
	return srv.URL + "/hook"
}

type subscriptionJSON struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Status       string `json:"status"`
	Meta         struct {
		VersionID string `json:"versionId"`
	} `json:"meta"`
	Criteria string `json:"criteria"`
	Channel  struct {
		Endpoint string   `json:"endpoint"`
		Header   []string `json:"header"`
	} `json:"channel"`
}

func decodeSubscription(t *testing.T, r *testenv.Response) subscriptionJSON {
	t.Helper()
	var s subscriptionJSON
	if err := json.Unmarshal(r.Body, &s); err != nil || s.ResourceType != "Subscription" {
		t.Fatalf("not a Subscription (%v): %s", err, r.Body)
	}
	return s
}

// searchIDs returns the resource ids of a searchset Bundle's entries.
func searchIDs(t *testing.T, r *testenv.Response) []string {
	t.Helper()
	var b struct {
		ResourceType, Type string
		Total              int `json:"total"`
		Entry              []struct {
			Resource struct {
				ID string `json:"id"`
			} `json:"resource"`
			Search struct {
				Mode string `json:"mode"`
			} `json:"search"`
		} `json:"entry"`
	}
	if r.Status != http.StatusOK {
		t.Fatalf("search: %d %s", r.Status, r.Body)
	}
	if err := json.Unmarshal(r.Body, &b); err != nil || b.ResourceType != "Bundle" || b.Type != "searchset" {
		t.Fatalf("not a searchset Bundle (%v): %s", err, r.Body)
	}
	ids := []string{}
	for _, e := range b.Entry {
		if e.Search.Mode != "match" {
			t.Errorf("entry search.mode = %q, want match", e.Search.Mode)
		}
		ids = append(ids, e.Resource.ID)
	}
	if b.Total != len(ids) {
		t.Errorf("total = %d for %d entries", b.Total, len(ids))
	}
	return ids
}

func TestSubscriptionLifecycle(t *testing.T) {
	e := testenv.Start(t)
	endpoint := okEndpoint(t)
	body := subscriptionBody(t, "kit_subscription_resource.json", endpoint, nil)

	r := e.Post("/fhir/Subscription", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	created := decodeSubscription(t, r)
	if created.ID == "" || created.Status != "requested" || created.Meta.VersionID != "1" {
		t.Errorf("created: id %q status %q version %q; want an id, requested, 1", created.ID, created.Status, created.Meta.VersionID)
	}
	if loc := r.Header.Get("Location"); loc != e.URL+"/fhir/Subscription/"+created.ID+"/_history/1" {
		t.Errorf("Location = %q", loc)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("Content-Type = %q", ct)
	}
	path := "/fhir/Subscription/" + created.ID

	// The handshake makes it active.
	deadline := time.Now().Add(10 * time.Second)
	for decodeSubscription(t, e.Get(path)).Status != "active" {
		if time.Now().After(deadline) {
			t.Fatalf("subscription never became active: %s", e.Get(path).Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := decodeSubscription(t, e.Get(path))
	if diff := cmp.Diff([]string{"Authorization: ***"}, got.Channel.Header); diff != "" {
		t.Errorf("read back channel.header (-want +got):\n%s", diff)
	}

	t.Run("search", func(t *testing.T) {
		for _, tt := range []struct {
			query string
			want  []string
		}{
			{"", []string{created.ID}},
			{"?url=" + url.QueryEscape(endpoint), []string{created.ID}},
			{"?url=" + url.QueryEscape("http://127.0.0.1:1/other"), []string{}},
			{"?status=active", []string{created.ID}},
			{"?status=off,error", []string{}},
			{"?status=requested,active&url=" + url.QueryEscape(endpoint), []string{created.ID}},
		} {
			if diff := cmp.Diff(tt.want, searchIDs(t, e.With(t).Get("/fhir/Subscription"+tt.query))); diff != "" {
				t.Errorf("search %q (-want +got):\n%s", tt.query, diff)
			}
		}
	})

	t.Run("$status", func(t *testing.T) {
		for _, tt := range []struct {
			method, path string
			body         string
			want         []string
		}{
			{http.MethodGet, path + "/$status", "", []string{""}},
			{http.MethodPost, path + "/$status", "", []string{""}},
			{http.MethodGet, "/fhir/Subscription/$status?id=" + created.ID, "", []string{""}},
			{http.MethodGet, "/fhir/Subscription/$status?status=off", "", []string{}},
			{http.MethodPost, "/fhir/Subscription/$status", `{"resourceType":"Parameters","parameter":[{"name":"id","valueString":"` + created.ID + `"}]}`, []string{""}},
		} {
			var b []byte
			if tt.body != "" {
				b = []byte(tt.body)
			}
			r := e.With(t).Do(tt.method, tt.path, b)
			// SubscriptionStatus Parameters have generated ids; count them.
			ids := searchIDs(t, r)
			if len(ids) != len(tt.want) {
				t.Errorf("%s %s: %d entries, want %d: %s", tt.method, tt.path, len(ids), len(tt.want), r.Body)
			}
			if len(ids) > 0 && !strings.Contains(string(r.Body), `{"name":"type","valueCode":"query-status"}`) {
				t.Errorf("%s %s: no query-status SubscriptionStatus: %s", tt.method, tt.path, r.Body)
			}
		}
	})

	t.Run("update", func(t *testing.T) {
		// A new filter keeps the subscription active.
		b := subscriptionBody(t, "kit_subscription_resource.json", endpoint, func(m map[string]any) {
			m["id"] = created.ID
			m["_criteria"].(map[string]any)["extension"].([]any)[0].(map[string]any)["valueString"] = "org-identifier=1234567893"
		})
		r := e.With(t).Do(http.MethodPut, path, b)
		if r.Status != http.StatusOK {
			t.Fatalf("PUT: %d %s", r.Status, r.Body)
		}
		if got := decodeSubscription(t, r); got.Status != "active" || got.Meta.VersionID != "2" {
			t.Errorf("after PUT: status %q version %q, want active 2", got.Status, got.Meta.VersionID)
		}
		if got := r.Header.Get("ETag"); got != `W/"2"` {
			t.Errorf("ETag = %q", got)
		}
		// Status off stops it.
		b = subscriptionBody(t, "kit_subscription_resource.json", endpoint, func(m map[string]any) { m["status"] = "off" })
		r = e.With(t).Do(http.MethodPut, path, b)
		if got := decodeSubscription(t, r); r.Status != http.StatusOK || got.Status != "off" {
			t.Errorf("PUT status off: %d %s", r.Status, r.Body)
		}
		if diff := cmp.Diff([]string{created.ID}, searchIDs(t, e.With(t).Get("/fhir/Subscription?status=off"))); diff != "" {
			t.Errorf("search status=off (-want +got):\n%s", diff)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if r := e.With(t).Do(http.MethodDelete, path, nil); r.Status != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", r.Status, r.Body)
		}
		for _, m := range []string{http.MethodGet, http.MethodDelete} {
			if r := e.With(t).Do(m, path, nil); r.Status != http.StatusNotFound || !strings.Contains(string(r.Body), "OperationOutcome") {
				t.Errorf("%s after delete: %d %s", m, r.Status, r.Body)
			}
		}
		if diff := cmp.Diff([]string{}, searchIDs(t, e.With(t).Get("/fhir/Subscription"))); diff != "" {
			t.Errorf("search after delete (-want +got):\n%s", diff)
		}
	})
}

func TestSubscriptionErrors(t *testing.T) {
	e := testenv.Start(t)
	endpoint := okEndpoint(t)
	good := subscriptionBody(t, "PAS_Subscription_example_v221_good.json", endpoint, nil)
	r := e.Post("/fhir/Subscription", good)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	id := decodeSubscription(t, r).ID

	tests := []struct {
		name, method, path string
		body               []byte
		header             []string
		wantStatus         int
		wantCode           string // OperationOutcome.issue[0].code
	}{
		{"email channel, id-only", "POST", "/fhir/Subscription", subscriptionBody(t, "PAS_Subscription_example_v221_bad.json", endpoint, nil), nil, 422, "not-supported"},
		{"id-only content", "POST", "/fhir/Subscription", subscriptionBody(t, "PAS_Subscription_example_id_only.json", endpoint, nil), nil, 422, "not-supported"},
		{"other topic", "POST", "/fhir/Subscription", subscriptionBody(t, "PAS_Subscription_example_bad_topic_and_criteria.json", endpoint, nil), nil, 422, "not-supported"},
		{"websocket", "POST", "/fhir/Subscription", subscriptionBody(t, "PAS_Subscription_example_v221_good.json", endpoint, func(m map[string]any) {
			m["channel"].(map[string]any)["type"] = "websocket"
		}), nil, 422, "not-supported"},
		{"not FHIR R4", "POST", "/fhir/Subscription", subscriptionBody(t, "PAS_Subscription_example_v221_good.json", endpoint, func(m map[string]any) {
			m["status"] = "bogus"
		}), nil, 400, ""},
		{"a Patient", "POST", "/fhir/Subscription", []byte(`{"resourceType":"Patient"}`), nil, 400, "structure"},
		{"not JSON", "POST", "/fhir/Subscription", []byte(`{"resourceType":`), nil, 400, "invalid"},
		{"empty", "POST", "/fhir/Subscription", []byte(` `), nil, 400, "required"},
		{"XML", "POST", "/fhir/Subscription", []byte(`<Subscription/>`), []string{"Content-Type", "application/fhir+xml"}, 415, "not-supported"},
		{"PUT other id", "PUT", "/fhir/Subscription/" + id, good, nil, 400, "invariant"},
		{"PUT unknown", "PUT", "/fhir/Subscription/nope", subscriptionBody(t, "PAS_Subscription_example_v221_good.json", endpoint, func(m map[string]any) {
			m["id"] = "nope"
		}), nil, 404, "not-found"},
		{"GET unknown", "GET", "/fhir/Subscription/nope", nil, nil, 404, "not-found"},
		{"DELETE unknown", "DELETE", "/fhir/Subscription/nope", nil, nil, 404, "not-found"},
		{"$status unknown", "GET", "/fhir/Subscription/nope/$status", nil, nil, 404, "not-found"},
		{"$status bad body", "POST", "/fhir/Subscription/$status", []byte(`{"resourceType":"Patient"}`), nil, 400, "structure"},
		{"$status id on instance", "GET", "/fhir/Subscription/" + id + "/$status?id=x", nil, nil, 400, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.With(t).Do(tt.method, tt.path, tt.body, tt.header...)
			if r.Status != tt.wantStatus {
				t.Errorf("status = %d, want %d: %s", r.Status, tt.wantStatus, r.Body)
			}
			if code := outcomeCode(t, r); tt.wantCode != "" && code != tt.wantCode {
				t.Errorf("issue code = %q, want %q (%s)", code, tt.wantCode, r.Body)
			}
		})
	}
}
