package hooks

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/priora/priora/coverage"
	"github.com/priora/priora/fhir"
	"github.com/priora/priora/internal/outbound"
	"github.com/priora/priora/store"
)

// recorder is an in-memory Recorder.
type recorder struct {
	mu         sync.Mutex
	assertions []store.CoverageAssertion
	calls      []store.HookCall
	feedback   []store.HookFeedback
}

func (r *recorder) RecordHookCall(_ context.Context, c *store.HookCall, _ bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.assertions = append(r.assertions, c.Made...)
	r.calls = append(r.calls, *c)
	return nil
}

func (r *recorder) SaveHookFeedback(_ context.Context, fs []store.HookFeedback) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.feedback = append(r.feedback, fs...)
	return nil
}

var testNow = time.Date(2026, 3, 10, 15, 4, 5, 0, time.UTC)

func newTestService(t testing.TB, edit func(*Config)) (*Service, *recorder) {
	t.Helper()
	rules, err := coverage.Sample()
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	// The fake EHRs listen on 127.0.0.1 over http: development mode's policy.
	dev, err := outbound.New(outbound.Config{InsecureDev: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Rules: func() *coverage.Rules { return rules }, Store: rec, Now: func() time.Time { return testNow }, Outbound: dev}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, rec
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "crd", filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edit decodes a JSON object, lets f change it and encodes it again.
func edit(t testing.TB, body []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeEHR is a FHIR server on 127.0.0.1 serving resources by Type/id and
// the searches CRD makes. It records the Authorization headers it saw.
type fakeEHR struct {
	*httptest.Server
	mu        sync.Mutex
	resources map[string]json.RawMessage
	auth      []string
	paths     []string
	// handler, when set, answers instead (failing, slow, unauthorized EHRs).
	handler http.HandlerFunc
}

func newFakeEHR(t testing.TB) *fakeEHR {
	f := &fakeEHR{resources: map[string]json.RawMessage{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeEHR) put(raw string) {
	var h resourceHead
	if err := json.Unmarshal([]byte(raw), &h); err != nil {
		panic(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resources[h.ResourceType+"/"+h.ID] = json.RawMessage(raw)
}

func (f *fakeEHR) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.paths = append(f.paths, r.URL.RequestURI())
	h := f.handler
	f.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	path := strings.TrimPrefix(r.URL.Path, "/")
	f.mu.Lock()
	defer f.mu.Unlock()
	if !strings.Contains(path, "/") { // search
		var entries []map[string]any
		for k, raw := range f.resources {
			if !strings.HasPrefix(k, path+"/") {
				continue
			}
			if p := r.URL.Query().Get("patient"); p != "" {
				var cv struct {
					Beneficiary struct{ Reference string } `json:"beneficiary"`
				}
				_ = json.Unmarshal(raw, &cv)
				if relativeRef(cv.Beneficiary.Reference) != "Patient/"+p {
					continue
				}
			}
			entries = append(entries, map[string]any{"resource": raw})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"resourceType": "Bundle", "type": "searchset", "entry": entries})
		return
	}
	raw, ok := f.resources[path]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}`))
		return
	}
	_, _ = w.Write(raw)
}

type (
	fhirCC     = fhir.CodeableConcept
	fhirCoding = fhir.Coding
)

func refTo(ref string) fhir.Reference { return fhir.Reference{Reference: ref} }

func textReasons(text string) []fhir.CodeableConcept { return []fhir.CodeableConcept{{Text: text}} }
