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
// embedded store with its sample rules must pass every PAS and CRD group.
func TestPrioraPassesAllGroups(t *testing.T) {
	e := testenv.Start(t, testenv.WithoutResponseChecks())
	out := &strings.Builder{}
	rep, err := suite.Run(context.Background(), suite.Config{
		Base:                e.URL,
		Registry:            registry(t),
		Progress:            out,
		NotificationTimeout: 30 * time.Second,
		Only:                only(),
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
