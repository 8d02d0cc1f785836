package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/priora/priora/internal/testenv"
)

// outcomeCode is the first issue code of an OperationOutcome answer, or
// fails the test when the body is not one.
func outcomeCode(t *testing.T, r *testenv.Response) string {
	t.Helper()
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Code        string `json:"code"`
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	if err := json.Unmarshal(r.Body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("want an OperationOutcome with issues, got %d %s", r.Status, r.Body)
	}
	return oo.Issue[0].Code
}

// TestContentNegotiation: Priora answers FHIR JSON only. A request for
// another representation (_format=xml, an Accept without JSON) or another
// FHIR version (Accept fhirVersion) is 406; a body in another format is 415.
func TestContentNegotiation(t *testing.T) {
	e := testenv.Start(t)
	kit := testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json")
	for _, tt := range []struct {
		name, method, path string
		body               []byte
		header             []string
		want               int
	}{
		{"metadata _format=xml", "GET", "/fhir/metadata?_format=xml", nil, nil, 406},
		{"metadata _format=application/fhir+xml", "GET", "/fhir/metadata?_format=" + url.QueryEscape("application/fhir+xml"), nil, nil, 406},
		{"metadata _format=json", "GET", "/fhir/metadata?_format=json", nil, nil, 200},
		{"metadata _format=application/fhir+json", "GET", "/fhir/metadata?_format=" + url.QueryEscape("application/fhir+json"), nil, nil, 200},
		{"metadata Accept XML", "GET", "/fhir/metadata", nil, []string{"Accept", "application/fhir+xml"}, 406},
		{"metadata Accept text/html", "GET", "/fhir/metadata", nil, []string{"Accept", "text/html"}, 406},
		{"metadata Accept XML or JSON", "GET", "/fhir/metadata", nil, []string{"Accept", "application/fhir+xml, application/fhir+json;q=0.5"}, 200},
		{"metadata Accept JSON refused by q=0", "GET", "/fhir/metadata", nil, []string{"Accept", "application/fhir+json;q=0"}, 406},
		{"metadata Accept fhirVersion 4.0", "GET", "/fhir/metadata", nil, []string{"Accept", "application/fhir+json; fhirVersion=4.0"}, 200},
		{"metadata Accept fhirVersion 4.3", "GET", "/fhir/metadata", nil, []string{"Accept", "application/fhir+json; fhirVersion=4.3"}, 406},
		{"metadata Accept fhirVersion 5.0", "GET", "/fhir/metadata", nil, []string{"Accept", "application/fhir+json;fhirVersion=5.0"}, 406},
		{"OperationDefinition _format=xml", "GET", "/fhir/OperationDefinition/Claim-submit?_format=xml", nil, nil, 406},
		{"SubscriptionTopic Accept XML", "GET", "/fhir/SubscriptionTopic/PASSubscriptionTopic", nil, []string{"Accept", "application/xml"}, 406},
		{"Subscription search _format=xml", "GET", "/fhir/Subscription?_format=xml", nil, nil, 406},
		{"$submit _format=xml", "POST", "/fhir/Claim/$submit?_format=xml", kit, nil, 406},
		{"$submit Accept fhirVersion 4.3", "POST", "/fhir/Claim/$submit", kit, []string{"Accept", "application/fhir+json; fhirVersion=4.3"}, 406},
		{"$submit XML body", "POST", "/fhir/Claim/$submit", []byte("<Bundle/>"), []string{"Content-Type", "application/fhir+xml"}, 415},
		{"$submit body fhirVersion 4.3", "POST", "/fhir/Claim/$submit", kit, []string{"Content-Type", "application/fhir+json; fhirVersion=4.3"}, 415},
		{"$submit body fhirVersion 4.0", "POST", "/fhir/Claim/$submit", kit, []string{"Content-Type", "application/fhir+json; fhirVersion=4.0"}, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.With(t).Do(tt.method, tt.path, tt.body, tt.header...)
			if r.Status != tt.want {
				t.Fatalf("status %d, want %d: %.300s", r.Status, tt.want, r.Body)
			}
			if tt.want >= 400 {
				if code := outcomeCode(t, r); code != "not-supported" {
					t.Errorf("issue code %q, want not-supported", code)
				}
				if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
					t.Errorf("Content-Type %q, want FHIR JSON", ct)
				}
			}
		})
	}
}

// TestHeadAndOperationMethods: every FHIR read answers HEAD like GET,
// without a body; GET on an operation that only POST serves is 405 with
// an Allow header naming the methods it does serve.
func TestHeadAndOperationMethods(t *testing.T) {
	e := testenv.Start(t)
	for _, path := range []string{"/fhir/metadata", "/fhir/OperationDefinition/Claim-submit", "/fhir/SubscriptionTopic/PASSubscriptionTopic", "/fhir/Subscription", "/fhir/Subscription/$status", "/healthz"} {
		t.Run("HEAD "+path, func(t *testing.T) {
			get := e.With(t).Get(path)
			head := e.With(t).Do(http.MethodHead, path, nil)
			if head.Status != http.StatusOK || get.Status != http.StatusOK {
				t.Fatalf("HEAD %d, GET %d; want 200 both", head.Status, get.Status)
			}
			if len(head.Body) != 0 {
				t.Errorf("HEAD has a body: %.100s", head.Body)
			}
			if head.Header.Get("Content-Type") != get.Header.Get("Content-Type") {
				t.Errorf("HEAD Content-Type %q, GET %q", head.Header.Get("Content-Type"), get.Header.Get("Content-Type"))
			}
		})
	}
	if r := e.Do(http.MethodHead, "/fhir/Subscription/nope", nil); r.Status != http.StatusNotFound {
		t.Errorf("HEAD of an unknown Subscription: %d, want 404", r.Status)
	}
	for _, tt := range []struct {
		path  string
		allow []string
	}{
		{"/fhir/Claim/$submit", []string{"POST"}},
		{"/fhir/Claim/$inquire", []string{"POST"}},
		{"/fhir/metadata", []string{"GET", "HEAD"}},
	} {
		t.Run("405 "+tt.path, func(t *testing.T) {
			method := http.MethodGet
			if slices.Contains(tt.allow, "GET") {
				method = http.MethodDelete
			}
			r := e.With(t).Do(method, tt.path, nil)
			if r.Status != http.StatusMethodNotAllowed {
				t.Fatalf("%s %s: %d, want 405: %s", method, tt.path, r.Status, r.Body)
			}
			var allow []string
			for _, m := range strings.Split(r.Header.Get("Allow"), ",") {
				if m = strings.TrimSpace(m); m != "" && m != http.MethodOptions {
					allow = append(allow, m)
				}
			}
			slices.Sort(allow)
			if !slices.Equal(allow, tt.allow) {
				t.Errorf("Allow %q, want %v", r.Header.Get("Allow"), tt.allow)
			}
			if code := outcomeCode(t, r); code != "not-supported" {
				t.Errorf("issue code %q, want not-supported", code)
			}
		})
	}
}

// TestSubscriptionRESTConventions: reads carry ETag W/"version" and mask
// channel header values; a PUT with If-Match of another version is 412
// and changes nothing; a PUT that sends a masked value back keeps the
// stored one; unknown search parameters are ignored (and left out of the
// self link) unless the client asks for strict handling.
func TestSubscriptionRESTConventions(t *testing.T) {
	e := testenv.Start(t)
	endpoint := okEndpoint(t)
	r := e.Post("/fhir/Subscription", subscriptionBody(t, "kit_subscription_resource.json", endpoint, nil))
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	created := decodeSubscription(t, r)
	path := "/fhir/Subscription/" + created.ID

	t.Run("masked headers", func(t *testing.T) {
		for _, r := range []*testenv.Response{r, e.With(t).Get(path), e.With(t).Get("/fhir/Subscription")} {
			if strings.Contains(string(r.Body), "demo_execution") {
				t.Errorf("a channel header value is shown: %s", r.Body)
			}
		}
		if got := decodeSubscription(t, e.With(t).Get(path)).Channel.Header; !slices.Equal(got, []string{"Authorization: ***"}) {
			t.Errorf("channel.header = %q, want the name with a masked value", got)
		}
	})

	t.Run("If-Match", func(t *testing.T) {
		read := e.With(t).Get(path)
		if et := read.Header.Get("ETag"); et != `W/"1"` {
			t.Fatalf("ETag %q, want W/\"1\"", et)
		}
		body := subscriptionBody(t, "kit_subscription_resource.json", endpoint, func(m map[string]any) { m["id"] = created.ID })
		for _, tag := range []string{`W/"7"`, `"7"`} {
			r := e.With(t).Do(http.MethodPut, path, body, "If-Match", tag)
			if r.Status != http.StatusPreconditionFailed {
				t.Fatalf("If-Match %s: %d, want 412: %s", tag, r.Status, r.Body)
			}
			outcomeCode(t, r)
		}
		if v := decodeSubscription(t, e.With(t).Get(path)).Meta.VersionID; v != "1" {
			t.Errorf("after refused PUTs the version is %s, want 1", v)
		}
		if r := e.With(t).Do(http.MethodPut, path, body, "If-Match", `W/"x"`); r.Status != http.StatusBadRequest {
			t.Errorf("malformed If-Match: %d, want 400", r.Status)
		}
		r := e.With(t).Do(http.MethodPut, path, body, "If-Match", `W/"1"`)
		if r.Status != http.StatusOK || r.Header.Get("ETag") != `W/"2"` {
			t.Fatalf("If-Match of the current version: %d ETag %q: %s", r.Status, r.Header.Get("ETag"), r.Body)
		}
	})

	t.Run("masked value sent back keeps the stored one", func(t *testing.T) {
		var got []string
		rcv := newHeaderEndpoint(t, &got)
		body := subscriptionBody(t, "kit_subscription_resource.json", rcv, func(m map[string]any) {
			m["channel"].(map[string]any)["header"] = []any{"Authorization: Bearer s3cret"}
		})
		r := e.With(t).Post("/fhir/Subscription", body)
		if r.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		sub := decodeSubscription(t, r)
		testenv.WaitFor(t, 10*time.Second, "the handshake", func() bool { return len(headerSnapshot(&got)) >= 1 })
		var m map[string]any
		if err := json.Unmarshal(e.With(t).Get("/fhir/Subscription/"+sub.ID).Body, &m); err != nil {
			t.Fatal(err)
		}
		m["channel"].(map[string]any)["endpoint"] = rcv // the read is sent back as it is
		m["channel"].(map[string]any)["header"] = []any{"Authorization: ***", "X-Other: ***"}
		unknown, _ := json.Marshal(m)
		if r := e.With(t).Do(http.MethodPut, "/fhir/Subscription/"+sub.ID, unknown); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "channel.header[1]") {
			t.Errorf("a masked value for a header never stored: %d %s; want 400 at channel.header[1]", r.Status, r.Body)
		}
		m["channel"].(map[string]any)["header"] = []any{"Authorization: ***"}
		back, _ := json.Marshal(m)
		if r := e.With(t).Do(http.MethodPut, "/fhir/Subscription/"+sub.ID, back); r.Status != http.StatusOK {
			t.Fatalf("PUT back: %d %s", r.Status, r.Body)
		}
		// Switching off and on again sends a new handshake with the header.
		m["status"] = "off"
		off, _ := json.Marshal(m)
		e.With(t).Do(http.MethodPut, "/fhir/Subscription/"+sub.ID, off)
		m["status"] = "requested"
		on, _ := json.Marshal(m)
		e.With(t).Do(http.MethodPut, "/fhir/Subscription/"+sub.ID, on)
		testenv.WaitFor(t, 10*time.Second, "a second handshake", func() bool { return len(headerSnapshot(&got)) >= 2 })
		for i, h := range headerSnapshot(&got) {
			if h != "Bearer s3cret" {
				t.Errorf("notification %d carried Authorization %q, want the stored value", i, h)
			}
		}
	})

	t.Run("unknown search parameters", func(t *testing.T) {
		r := e.With(t).Get("/fhir/Subscription?status=active,requested&_bogus=1&name=x")
		if r.Status != http.StatusOK {
			t.Fatalf("lenient search: %d %s", r.Status, r.Body)
		}
		var b struct {
			Link []struct{ Relation, URL string } `json:"link"`
		}
		if err := json.Unmarshal(r.Body, &b); err != nil || len(b.Link) != 1 {
			t.Fatalf("no self link: %s", r.Body)
		}
		if u := b.Link[0].URL; strings.Contains(u, "bogus") || strings.Contains(u, "name=") || !strings.Contains(u, "status=") {
			t.Errorf("self link %q, want the status parameter only", u)
		}
		for _, prefer := range []string{"handling=strict", "return=minimal, handling=strict"} {
			r := e.With(t).Get("/fhir/Subscription?status=active&_bogus=1", "Prefer", prefer)
			if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "_bogus") {
				t.Errorf("Prefer %q: %d %s; want 400 naming _bogus", prefer, r.Status, r.Body)
			}
		}
		if r := e.With(t).Get("/fhir/Subscription?status=active", "Prefer", "handling=strict"); r.Status != http.StatusOK {
			t.Errorf("strict search with known parameters: %d %s", r.Status, r.Body)
		}
		if r := e.With(t).Get("/fhir/Subscription?_bogus=1", "Prefer", "handling=lenient"); r.Status != http.StatusOK {
			t.Errorf("lenient search: %d %s", r.Status, r.Body)
		}
		if r := e.With(t).Get("/fhir/Subscription/$status?status=active&_bogus=1"); r.Status != http.StatusOK {
			t.Errorf("lenient $status: %d %s", r.Status, r.Body)
		}
		if r := e.With(t).Get("/fhir/Subscription/$status?status=active&_bogus=1", "Prefer", "handling=strict"); r.Status != http.StatusBadRequest {
			t.Errorf("strict $status with an unknown parameter: %d %s", r.Status, r.Body)
		}
	})
}

var headerMu sync.Mutex

// newHeaderEndpoint is a notification endpoint that records the
// Authorization header of each notification in *got.
func newHeaderEndpoint(t *testing.T, got *[]string) string {
	srv := httptest.NewServer(testenv.CheckedEndpoint(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headerMu.Lock()
		*got = append(*got, r.Header.Get("Authorization"))
		headerMu.Unlock()
	})))
	t.Cleanup(srv.Close)
	return srv.URL + "/hook"
}

func headerSnapshot(got *[]string) []string {
	headerMu.Lock()
	defer headerMu.Unlock()
	return slices.Clone(*got)
}

// TestCapabilityStatementConventions: every implementationGuide entry
// names the version served (canonical|version), and the backport's
// capabilitystatement-subscriptiontopic-canonical extension is where its
// definition allows it (context CapabilityStatement.rest.resource, value
// canonical: Subscriptions R5 Backport 1.1.0, whose package is not
// embedded, so the validator cannot check it) and names the PAS topic.
func TestCapabilityStatementConventions(t *testing.T) {
	e := testenv.Start(t)
	var cs struct {
		ImplementationGuide []string `json:"implementationGuide"`
		Rest                []struct {
			Extension []map[string]any `json:"extension"`
			Resource  []struct {
				Type      string           `json:"type"`
				Extension []map[string]any `json:"extension"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(e.Get("/fhir/metadata").Body, &cs); err != nil {
		t.Fatal(err)
	}
	for _, ig := range cs.ImplementationGuide {
		canonical, version, ok := strings.Cut(ig, "|")
		if !ok || version == "" || !strings.Contains(canonical, "/ImplementationGuide/") {
			t.Errorf("implementationGuide %q is not canonical|version", ig)
		}
	}
	for _, want := range []string{"hl7.fhir.us.davinci-pas|2.2.1", "hl7.fhir.uv.subscriptions-backport|1.1.0"} {
		if !slices.ContainsFunc(cs.ImplementationGuide, func(ig string) bool { return strings.HasSuffix(ig, want) }) {
			t.Errorf("implementationGuide %v does not list %s", cs.ImplementationGuide, want)
		}
	}
	const topicExt = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical"
	found := 0
	for _, rest := range cs.Rest {
		for _, x := range rest.Extension {
			if x["url"] == topicExt {
				t.Errorf("the topic extension is on CapabilityStatement.rest; its context is rest.resource")
			}
		}
		for _, res := range rest.Resource {
			for _, x := range res.Extension {
				if x["url"] != topicExt {
					continue
				}
				found++
				if res.Type != "Subscription" || len(x) != 2 || x["valueCanonical"] != "http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic" {
					t.Errorf("topic extension on %s: %v; want valueCanonical (only) with the PAS topic, on Subscription", res.Type, x)
				}
			}
		}
	}
	if found != 1 {
		t.Errorf("%d topic extensions, want 1 on rest.resource Subscription", found)
	}
}
