package suite_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/priora/priora/conformance/suite"
	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/profiles"
	"github.com/priora/priora/store"
)

var (
	regOnce sync.Once
	reg     *profiles.Registry
)

// registry loads the profiles once for every run in this package.
func registry(t testing.TB) *profiles.Registry {
	regOnce.Do(func() {
		var err error
		if reg, err = profiles.Load(); err != nil {
			t.Fatalf("profiles: %v", err)
		}
	})
	return reg
}

// TestPrioraPassesAllGroups is CI's conformance gate: Priora on the
// embedded store with its sample rules must pass every PAS and CRD group,
// with must-support checked strictly (--strict-must-support, as Inferno
// does): every must-support element of the response profiles is shown by
// some answer of the run.
func TestPrioraPassesAllGroups(t *testing.T) {
	e := testenv.Start(t, testenv.WithoutResponseChecks())
	out := &strings.Builder{}
	rep, err := suite.Run(context.Background(), suite.Config{
		Base:                e.URL,
		Registry:            registry(t),
		Progress:            out,
		NotificationTimeout: 30 * time.Second,
		Only:                only(),
		StrictMustSupport:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if testing.Verbose() {
		t.Log(out.String())
	}
	for _, r := range rep.Results {
		if r.Status == suite.Fail {
			t.Errorf("%s %s failed:\n%s", r.ID, r.Name, strings.Join(r.Messages, "\n"))
		}
	}
	requireRan(t, rep)
}

// skipsAllowed are the only skips a run against Priora may have, by test
// id prefix and a fragment of the reason; any other skip means a test that
// should have run did not (an input that stopped conforming, a step whose
// answer a later test needed), and the gate would pass without checking it.
var skipsAllowed = []struct{ idPrefix, reason string }{
	// The test server listens on http://127.0.0.1.
	{"crd-", "is not https; TLS is checked only for https endpoints"},
	// Priora returns no coverage information on encounter-start (crd-3.2)
	// and encounter-discharge (crd-3.3): CRD makes it optional for these
	// secondary hooks, so the tests that check or vary it have none.
	{"crd-3.2.", "coverage information"},
	{"crd-3.3.", "coverage information"},
}

// requireRan fails the test for every result skipped for a reason outside
// skipsAllowed.
func requireRan(t *testing.T, rep *suite.Report) {
	t.Helper()
	for _, r := range rep.Results {
		if r.Status != suite.Skip {
			continue
		}
		msg := strings.Join(r.Messages, " ")
		allowed := false
		for _, a := range skipsAllowed {
			allowed = allowed || strings.HasPrefix(r.ID, a.idPrefix) && strings.Contains(msg, a.reason)
		}
		if !allowed {
			t.Errorf("%s %s was skipped against Priora: %s", r.ID, r.Name, msg)
		}
	}
}

// only narrows a run while developing: CONFORM_ONLY=pas-1,crd-3.6.
func only() []string {
	if v := os.Getenv("CONFORM_ONLY"); v != "" {
		return strings.Split(v, ",")
	}
	return nil
}

// TestPrioraWithAuth runs the suite the way a registered EHR would reach
// a production Priora: a SMART Backend Services token fetched with a
// signed client assertion for the FHIR API, and a signed JWT on every CDS
// Hooks call.
func TestPrioraWithAuth(t *testing.T) {
	// The suite's listener (notifications, mock EHR) is on loopback: the
	// allow list lets Priora reach it with authentication on.
	e := testenv.Start(t, testenv.WithAuth(), testenv.WithoutResponseChecks(),
		testenv.WithConfig(func(c *app.Config) { c.Security.OutboundAllow = []string{"127.0.0.1/32"} }))
	raw := testenv.Fixture(t, "auth/ES384.private.json")
	tk := testenv.LoadKey(t, "auth/ES384.private.json", "")
	e.RegisterClient(store.Client{ID: "conformance-ehr", Org: "umo-example", NPI: "8189991234", Scopes: []string{"system/*.cruds"}}, tk)
	key, err := suite.ParseSigningKey(raw, "")
	if err != nil {
		t.Fatal(err)
	}
	out := &strings.Builder{}
	rep, err := suite.Run(context.Background(), suite.Config{
		Base: e.URL, ClientID: "conformance-ehr", Key: key, Registry: registry(t), Progress: out,
		NotificationTimeout: 30 * time.Second, Only: cmpOnly([]string{"pas-1", "pas-2.1", "pas-2.2", "pas-2.3", "pas-3.2", "pas-4", "crd-1", "crd-3.6"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if testing.Verbose() {
		t.Log(out.String())
	}
	for _, r := range rep.Results {
		if r.Status == suite.Fail {
			t.Errorf("%s %s failed:\n%s", r.ID, r.Name, strings.Join(r.Messages, "\n"))
		}
	}
	requireRan(t, rep)
	// Without credentials the same server refuses the EHR.
	rep, err = suite.Run(context.Background(), suite.Config{Base: e.URL, Registry: registry(t), Only: []string{"pas-2.1.1.02"}})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := rep.Result("pas-2.1.1.02"); r.Status != suite.Fail || !strings.Contains(strings.Join(r.Messages, " "), "HTTP 401") {
		t.Errorf("without credentials: got %s %v, want a 401 failure", r.Status, r.Messages)
	}
}

func cmpOnly(def []string) []string {
	if o := only(); o != nil {
		return o
	}
	return def
}
