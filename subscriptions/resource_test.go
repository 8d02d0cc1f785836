package subscriptions

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/internal/outbound"
	"github.com/priora/priora/store"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "subscriptions", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edit decodes a fixture, applies f to it and encodes it again.
func edit(t *testing.T, name string, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(fixture(t, name), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func chan_(m map[string]any) map[string]any { return m["channel"].(map[string]any) }

func setFilter(m map[string]any, filters ...string) {
	var exts []any
	for _, f := range filters {
		exts = append(exts, map[string]any{"url": extFilterCriteria, "valueString": f})
	}
	m["_criteria"] = map[string]any{"extension": exts}
}

func TestParse(t *testing.T) {
	const good = "PAS_Subscription_example_v221_good.json"
	dev, _ := outbound.New(outbound.Config{InsecureDev: true})
	strict, _ := outbound.New(outbound.Config{})
	withEndpoint := func(u string) []byte {
		return edit(t, good, func(m map[string]any) { chan_(m)["endpoint"] = u })
	}
	withHeader := func(h string) []byte {
		return edit(t, good, func(m map[string]any) { chan_(m)["header"] = []any{"Authorization: Bearer x", h} })
	}
	tests := []struct {
		name string
		raw  []byte
		want *channel
		// wantExpr lists the expressions of the expected issues.
		wantExpr []string
		// strict checks endpoints with authentication on (else insecure dev mode).
		strict bool
	}{
		{
			name: "kit v2.2.1 good",
			raw:  fixture(t, good),
			want: &channel{id: "pas-subscription-v221-good", status: "requested", endpoint: "https://subscriptions.argo.run/fhir/r4/$subscription-hook",
				payload: "application/json", filters: []string{"8189991234"}, timeout: 10 * time.Second},
		},
		{
			name: "kit preset: past end, timeout capped, header, localhost in dev mode",
			raw:  fixture(t, "kit_subscription_resource.json"),
			want: &channel{status: "requested", endpoint: "http://localhost:4567/custom/subscriptions_r5_backport_r4_server/subscription/channel/notification_listener",
				payload: "application/fhir+json", headers: []string{"Authorization: Bearer demo_execution"}, filters: []string{"8189991234"}, timeout: 10 * time.Second},
		},
		{name: "kit preset with authentication on: localhost refused", raw: fixture(t, "kit_subscription_resource.json"), strict: true,
			wantExpr: []string{"Subscription.channel.endpoint"}},
		{name: "IG example: plain http to a public host", raw: fixture(t, "Subscription-PASSubscriptionExample.json"),
			wantExpr: []string{"Subscription.channel.endpoint"}},
		{
			name: "IG example over https: orgIdentifier spelling",
			raw: edit(t, "Subscription-PASSubscriptionExample.json", func(m map[string]any) {
				chan_(m)["endpoint"] = "https://example.org/send-me-subscription-notifications"
			}),
			want: &channel{id: "PASSubscriptionExample", status: "requested", endpoint: "https://example.org/send-me-subscription-notifications",
				payload: "application/fhir+json", filters: []string{"1234567893"}, timeout: 10 * time.Second},
		},
		{
			name: "comma list, several filters, resource prefix, heartbeat, timeout capped",
			raw: edit(t, good, func(m map[string]any) {
				setFilter(m, "org-identifier=a, b,a", "ClaimResponse?orgIdentifier:eq=http://hl7.org/fhir/sid/us-npi|c")
				chan_(m)["extension"] = []any{
					map[string]any{"url": extHeartbeat, "valueUnsignedInt": 90},
					map[string]any{"url": extTimeout, "valueUnsignedInt": 9999},
				}
			}),
			want: &channel{id: "pas-subscription-v221-good", status: "requested", endpoint: "https://subscriptions.argo.run/fhir/r4/$subscription-hook",
				payload: "application/json", filters: []string{"a", "b", "http://hl7.org/fhir/sid/us-npi|c"}, heartbeat: 90 * time.Second, timeout: maxTimeout},
		},
		{name: "heartbeat under a minute", raw: edit(t, good, func(m map[string]any) {
			chan_(m)["extension"] = []any{map[string]any{"url": extHeartbeat, "valueUnsignedInt": 1}}
		}), wantExpr: []string{"Subscription.channel.extension"}},
		{name: "loopback endpoint", raw: withEndpoint("https://127.0.0.1:8080/admin/audit"), strict: true, wantExpr: []string{"Subscription.channel.endpoint"}},
		{name: "IPv4-mapped loopback endpoint", raw: withEndpoint("https://[::ffff:7f00:1]/"), strict: true, wantExpr: []string{"Subscription.channel.endpoint"}},
		{name: "metadata endpoint", raw: withEndpoint("https://169.254.169.254/latest/meta-data/"), wantExpr: []string{"Subscription.channel.endpoint"}},
		{name: "private endpoint", raw: withEndpoint("https://10.1.2.3/hook"), wantExpr: []string{"Subscription.channel.endpoint"}},
		{name: "Cookie header", raw: withHeader("Cookie: priora_session=x"), wantExpr: []string{"Subscription.channel.header[1]"}},
		{name: "Host header", raw: withHeader("host: admin.internal"), wantExpr: []string{"Subscription.channel.header[1]"}},
		{name: "X-Forwarded-For header", raw: withHeader("X-Forwarded-For: 127.0.0.1"), wantExpr: []string{"Subscription.channel.header[1]"}},
		{name: "Forwarded header", raw: withHeader("Forwarded: for=127.0.0.1"), wantExpr: []string{"Subscription.channel.header[1]"}},
		{name: "hop-by-hop header", raw: withHeader("Keep-Alive: timeout=5"), wantExpr: []string{"Subscription.channel.header[1]"}},
		{name: "proxy header", raw: withHeader("Proxy-Authorization: Basic eA=="), wantExpr: []string{"Subscription.channel.header[1]"}},
		{name: "email channel, id-only, identifier= filter", raw: fixture(t, "PAS_Subscription_example_v221_bad.json"),
			wantExpr: []string{"Subscription.criteria.extension", "Subscription.channel.type", "Subscription.channel.payload.extension"}},
		{name: "id-only", raw: fixture(t, "PAS_Subscription_example_id_only.json"),
			wantExpr: []string{"Subscription.criteria.extension", "Subscription.channel.payload.extension"}},
		{name: "other topic, no filter", raw: fixture(t, "PAS_Subscription_example_bad_topic_and_criteria.json"),
			wantExpr: []string{"Subscription.criteria"}},
		{name: "identifier= filter", raw: fixture(t, "PAS_Subscription_example_full_resource.json"),
			wantExpr: []string{"Subscription.criteria.extension"}},
		{name: "no filter", raw: edit(t, good, func(m map[string]any) { delete(m, "_criteria") }),
			wantExpr: []string{"Subscription.criteria.extension"}},
		{name: "empty filter value", raw: edit(t, good, func(m map[string]any) { setFilter(m, "org-identifier= ,") }),
			wantExpr: []string{"Subscription.criteria.extension"}},
		{name: "websocket", raw: edit(t, good, func(m map[string]any) { chan_(m)["type"] = "websocket" }),
			wantExpr: []string{"Subscription.channel.type"}},
		{name: "ftp endpoint", raw: edit(t, good, func(m map[string]any) { chan_(m)["endpoint"] = "ftp://x.example/y" }),
			wantExpr: []string{"Subscription.channel.endpoint"}},
		{name: "relative endpoint", raw: edit(t, good, func(m map[string]any) { chan_(m)["endpoint"] = "/hook" }),
			wantExpr: []string{"Subscription.channel.endpoint"}},
		{name: "endpoint with credentials", raw: edit(t, good, func(m map[string]any) { chan_(m)["endpoint"] = "https://u:p@x.example/" }),
			wantExpr: []string{"Subscription.channel.endpoint"}},
		{name: "no endpoint", raw: edit(t, good, func(m map[string]any) { delete(chan_(m), "endpoint") }),
			wantExpr: []string{"Subscription.channel.endpoint"}},
		{name: "xml payload", raw: edit(t, good, func(m map[string]any) { chan_(m)["payload"] = "application/fhir+xml" }),
			wantExpr: []string{"Subscription.channel.payload"}},
		{name: "no payload content", raw: edit(t, good, func(m map[string]any) { delete(chan_(m), "_payload") }),
			wantExpr: []string{"Subscription.channel.payload.extension"}},
		{name: "bad headers", raw: edit(t, good, func(m map[string]any) {
			chan_(m)["header"] = []any{"no colon", "Content-Type: text/plain", "X-Ok: fine", "Bad Name: x"}
		}), wantExpr: []string{"Subscription.channel.header[0]", "Subscription.channel.header[1]", "Subscription.channel.header[3]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := limits{timeout: 10 * time.Second, minHeartbeat: time.Minute, policy: dev}
			if tt.strict {
				lim.policy = strict
			}
			got, err := parse(tt.raw, lim)
			if tt.want != nil {
				if err != nil {
					t.Fatalf("parse: %v", err)
				}
				if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(channel{})); diff != "" {
					t.Errorf("parse (-want +got):\n%s", diff)
				}
				return
			}
			if fhir.KindOf(err) != fhir.Unprocessable {
				t.Fatalf("parse: got %v (kind %v), want an Unprocessable error", err, fhir.KindOf(err))
			}
			var exprs []string
			for _, is := range fhir.IssuesOf(err) {
				exprs = append(exprs, is.Expression)
				if is.Diagnostics == "" || is.Severity != "error" {
					t.Errorf("issue %+v lacks diagnostics or severity", is)
				}
			}
			if diff := cmp.Diff(tt.wantExpr, exprs); diff != "" {
				t.Errorf("issue expressions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetHeaders(t *testing.T) {
	h := http.Header{}
	setHeaders(h, []string{"Authorization: Bearer abc:def", "X-Many: 1", "x-many:2", "Cookie: stored before it was refused"})
	want := http.Header{"Authorization": {"Bearer abc:def"}, "X-Many": {"1", "2"}}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
}

func TestBackoff(t *testing.T) {
	s := &Service{opt: Options{RetryBase: time.Second, RetryCap: 10 * time.Second}}
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, s.backoff(n))
	}
	want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff (-want +got):\n%s", diff)
	}
	if d := s.backoff(1000); d != 10*time.Second {
		t.Errorf("backoff(1000) = %v, want the cap", d)
	}
}

func TestFocusURL(t *testing.T) {
	const id = "6f9619ff-8b86-d011-b42d-00cf4fc964ff"
	if got := focusURL([]byte(`{"resourceType":"Bundle","id":"`+id+`"}`), "n1"); got != "urn:uuid:"+id {
		t.Errorf("focusURL(uuid id) = %s", got)
	}
	a, b := focusURL([]byte(`{"id":"not-a-uuid"}`), "n1"), focusURL([]byte(`{}`), "n1")
	if a != b || !strings.HasPrefix(a, "urn:uuid:") || a == focusURL(nil, "n2") {
		t.Errorf("focusURL without a uuid id: %s, %s; want one stable urn:uuid per notification", a, b)
	}
}

func TestRender(t *testing.T) {
	sub := &store.Subscription{
		ID: "s1", Version: 3, Updated: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC),
		Resource: string(fixture(t, "kit_subscription_resource.json")),
	}
	body, err := render(sub, "error", "handshake failed: x")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(body), `{"resourceType":"Subscription","id":"s1","meta":`) {
		t.Errorf("render does not start with resourceType, id, meta: %.80s", body)
	}
	var got struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Error  string `json:"error"`
		End    string `json:"end"`
		Meta   struct {
			VersionID   string   `json:"versionId"`
			LastUpdated string   `json:"lastUpdated"`
			Profile     []string `json:"profile"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := got
	want.ID, want.Status, want.Error, want.End = "s1", "error", "handshake failed: x", "2020-12-31T12:00:00Z"
	want.Meta.VersionID, want.Meta.LastUpdated = "3", "2026-01-02T03:04:05.006Z"
	want.Meta.Profile = []string{"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("render (-want +got):\n%s", diff)
	}
}
