package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/priora/priora/internal/testenv"
)

// TestMetrics: the private listener exposes the series an SRE alerts on,
// they move when Priora works, and pprof answers there and only there.
func TestMetrics(t *testing.T) {
	addr, maddr := freeAddr(t), freeAddr(t)
	vars := map[string]string{"PRIORA_DATA_DIR": t.TempDir(), "PRIORA_ADDR": addr, "PRIORA_INSECURE_DEV": "1",
		"PRIORA_METRICS_ADDR": maddr}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, env(vars), out, out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	base, mbase := "http://"+addr, "http://"+maddr
	waitReady(t, base, out)

	// A request with one item approved by a rule and one pended for review.
	body, err := os.ReadFile(filepath.Join(testenv.Root(), "testdata", "pas", "ig", "Bundle-HomecareAuthorizationBundleExample.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := http.Post(base+"/fhir/Claim/$submit", "application/fhir+json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 200 {
		t.Fatalf("$submit: %d", r.StatusCode)
	}

	// A subscription: its handshake is a delivery.
	hooked := make(chan struct{}, 8)
	receiver := httptest.NewServer(testenv.CheckedEndpoint(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		select {
		case hooked <- struct{}{}:
		default:
		}
	})))
	defer receiver.Close()
	var sub map[string]any
	raw, err := os.ReadFile(filepath.Join(testenv.Root(), "testdata", "subscriptions", "PAS_Subscription_example_v221_good.json"))
	if err != nil || json.Unmarshal(raw, &sub) != nil {
		t.Fatalf("subscription fixture: %v", err)
	}
	sub["channel"].(map[string]any)["endpoint"] = receiver.URL + "/hook"
	subJSON, _ := json.Marshal(sub)
	r, err = http.Post(base+"/fhir/Subscription", "application/fhir+json", bytes.NewReader(subJSON))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("POST Subscription: %d", r.StatusCode)
	}
	select {
	case <-hooked:
	case <-time.After(30 * time.Second):
		t.Fatal("no handshake arrived")
	}

	// A CRD order-sign.
	hook, err := os.ReadFile(filepath.Join(testenv.Root(), "testdata", "crd", "ig", "CRDServiceRequest.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err = http.Post(base+"/cds-services/order-sign-crd", "application/json", strings.NewReader(string(hook)))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 200 {
		t.Fatalf("order-sign: %d", r.StatusCode)
	}

	// A request is timed once its answer is written, so the client may
	// scrape before the server has counted it: wait for the count.
	var m map[string]float64
	for deadline := time.Now().Add(5 * time.Second); ; {
		m = scrape(t, mbase+"/metrics")
		_, timed := m[`priora_http_request_duration_seconds_count{method="POST",route="/fhir/Claim/$submit",status="200"}`]
		_, delivered := m[`priora_subscription_deliveries_total{result="delivered",type="handshake"}`]
		if timed && delivered || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []struct {
		series string
		min    float64
	}{
		{`priora_http_request_duration_seconds_count{method="POST",route="/fhir/Claim/$submit",status="200"}`, 1},
		{`priora_pas_decisions_total{by="rule",outcome="A1"}`, 1},
		{`priora_pas_decisions_total{by="rule",outcome="A4"}`, 1},
		{`priora_review_queue_depth`, 1},
		{`priora_subscription_deliveries_total{result="delivered",type="handshake"}`, 1},
		{`priora_review_queue_oldest_age_seconds`, 0},
		{`priora_review_queue_overdue`, 0},
		{`priora_store_operation_duration_seconds_count{command="insert",result="ok"}`, 1},
		{`go_goroutines`, 1},
		{`process_resident_memory_bytes`, 1},
	} {
		v, ok := m[want.series]
		if !ok {
			t.Errorf("/metrics lacks %s (have %v)", want.series, keys(m, "priora_http"))
		} else if v < want.min {
			t.Errorf("%s = %v, want ≥ %v", want.series, v, want.min)
		}
	}

	// The rules in force are named; starting is not a reload.
	if len(keys(m, "priora_rules_info{")) != 1 {
		t.Errorf("priora_rules_info names %v, want the one rule set in force", keys(m, "priora_rules_info{"))
	}
	if n := m[`priora_rules_reloads_total{result="ok"}`]; n != 0 {
		t.Errorf("priora_rules_reloads_total{ok} = %v after start, want 0", n)
	}

	// The order-sign's answer, whatever the rules say of its order.
	answers := 0.0
	for k, v := range m {
		if strings.HasPrefix(k, "priora_crd_coverage_answers_total{") && strings.Contains(k, `hook="order-sign"`) {
			answers += v
		}
	}
	if answers < 1 {
		t.Errorf("priora_crd_coverage_answers_total has no order-sign answer (%v)", keys(m, "priora_crd"))
	}

	for _, c := range []struct {
		url  string
		want int
	}{
		{mbase + "/debug/pprof/cmdline", 200},
		{base + "/debug/pprof/cmdline", 404},
		{base + "/metrics", 404},
	} {
		r, err := http.Get(c.url)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != c.want {
			t.Errorf("GET %s = %d, want %d", c.url, r.StatusCode, c.want)
		}
	}
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$`)

// scrape reads a Prometheus text exposition into series → value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if r.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, r.StatusCode)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if sm := sampleLine.FindStringSubmatch(line); sm != nil {
			v, err := strconv.ParseFloat(sm[2], 64)
			if err == nil {
				out[sm[1]] = v
			}
		}
	}
	return out
}

func keys(m map[string]float64, prefix string) []string {
	var out []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}
