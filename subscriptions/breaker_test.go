package subscriptions

import (
	"testing"
	"time"
)

func TestBreakerHalfOpen(t *testing.T) {
	b := newBreakers(2, time.Minute)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const k = "tenant https://ehr.example.org"
	for i := range 2 {
		if !b.allow(k, t0) {
			t.Fatalf("request %d refused before the breaker opened", i+1)
		}
		b.record(k, false, t0)
	}
	if b.allow(k, t0.Add(59*time.Second)) {
		t.Errorf("open breaker allowed a request during the cooldown")
	}
	if !b.allow("other "+k, t0) {
		t.Errorf("another tenant's breaker for the same endpoint is open")
	}
	// Half-open: one probe, no second one while it runs.
	if !b.allow(k, t0.Add(time.Minute)) {
		t.Fatalf("no probe after the cooldown")
	}
	if b.allow(k, t0.Add(time.Minute)) {
		t.Errorf("a second request while the probe runs")
	}
	b.record(k, false, t0.Add(time.Minute))
	if b.allow(k, t0.Add(90*time.Second)) {
		t.Errorf("a failed probe did not reopen the breaker")
	}
	// A cancelled probe lets the next one through; a successful one closes it.
	if !b.allow(k, t0.Add(2*time.Minute)) {
		t.Fatalf("no probe after the second cooldown")
	}
	b.abandon(k)
	if !b.allow(k, t0.Add(2*time.Minute)) {
		t.Fatalf("no probe after a cancelled one")
	}
	b.record(k, true, t0.Add(2*time.Minute))
	if !b.allow(k, t0.Add(2*time.Minute)) || !b.allow(k, t0.Add(2*time.Minute)) {
		t.Errorf("closed breaker refused requests")
	}
}
