package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/priora/priora/bench"
)

// TestTwoProcessesOneStore runs two Priora processes on one store — the
// first on its embedded engine, the second connected to it with
// MONGODB_URI, as replicas behind a load balancer share a MongoDB — and
// drives CRD order-sign and PAS $submit traffic at both in turn. Every
// call must succeed, and each process must know what the other stored: a
// submission made through one is answered by the other as a replay (the
// same response, no second chain). Delivery of subscription notifications
// exactly once across processes is subscriptions'
// TestTwoProcessesDeliverEachEventOnce.
func TestTwoProcessesOneStore(t *testing.T) {
	deadline := time.Now().Add(300 * time.Second) // a guard against a hang, not a speed target
	bin := buildPriora(t)
	data := t.TempDir()
	addrA, addrB := freeAddr(t), freeAddr(t)
	a := startChild(t, bin, addrA, data, deadline)
	defer a.stop(t)
	uri, err := os.ReadFile(filepath.Join(data, "store", "priora.uri"))
	if err != nil {
		t.Fatalf("the first process published no store URI: %v", err)
	}
	b := startChild(t, bin, addrB, t.TempDir(), deadline, "MONGODB_URI="+strings.TrimSpace(string(uri)))
	defer b.stop(t)
	baseA, baseB := "http://"+addrA, "http://"+addrB

	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	res, err := bench.Run(ctx, bench.Config{
		Bases: []string{baseA, baseB}, Mix: map[string]int{bench.OrderSign: 3, bench.Submit: 1},
		Concurrency: 16, Requests: 400, Duration: 90 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 400 {
		t.Fatalf("%d of %d calls answered 2xx: %v", res.OK, res.Requests, res.ErrorKinds)
	}
	t.Logf("two processes: %.0f calls/s, p99 %.1f ms", res.Throughput, res.Latency.P99)

	// Cross-process idempotency: submit through A, retry through B.
	raw, err := bench.Fixture("pas/kit-approval.json")
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := bench.SubmitTemplate("approval", raw)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	for i, tok := range []string{"scaleout-" + bench.RunID() + "-1", "scaleout-" + bench.RunID() + "-2"} {
		body := tpl.Render(tok)
		first, second := baseA, baseB
		if i == 1 {
			first, second = baseB, baseA
		}
		st1, ans1, err := post(client, first+"/fhir/Claim/$submit", body)
		if err != nil || st1 != http.StatusOK {
			t.Fatalf("submit via %s: %d %v %s", first, st1, err, snip(ans1))
		}
		st2, ans2, err := post(client, second+"/fhir/Claim/$submit", body)
		if err != nil || st2 != http.StatusOK || !bytes.Equal(ans1, ans2) {
			t.Errorf("retry via %s: %d %v; same answer: %v", second, st2, err, bytes.Equal(ans1, ans2))
		}
	}
}
