package suite_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/priora/priora/conformance/suite"
	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/profiles"
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

// progress is where a run's live output goes: the test log, or stdout
// with -v for a human to read.
func progress(t *testing.T) *strings.Builder { return &strings.Builder{} }

// TestPrioraPassesAllGroups is CI's conformance gate: Priora on the
// embedded store with its sample rules must pass every PAS and CRD group.
func TestPrioraPassesAllGroups(t *testing.T) {
	e := testenv.Start(t, testenv.WithoutResponseChecks())
	out := progress(t)
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
	t.Log(out.String())
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
