package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
)

// logLines are the JSON log records whose message is msg.
func logLines(t *testing.T, e *testenv.Env, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(e.Logs.String(), "\n") {
		var m map[string]any
		if l == "" || json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestRequestIDInDeepLogLines: lines logged far from the HTTP edge — the
// profile validation's (internal/app, in pas's validation goroutine) and
// the CDS Hooks call record's (hooks) — carry the request id the client
// sent, as does the access log line; another request's lines carry its own.
func TestRequestIDInDeepLogLines(t *testing.T) {
	e := testenv.Start(t, testenv.WithoutResponseChecks(), testenv.WithConfig(func(c *app.Config) { c.Validation = app.ValidationLog }))
	r := e.Post(submitPath, profileInvalidRequest(t), "X-Request-Id", "trace-submit-1")
	if r.Status != http.StatusOK || r.Header.Get("X-Request-Id") != "trace-submit-1" {
		t.Fatalf("status %d, X-Request-Id %q: %.300s", r.Status, r.Header.Get("X-Request-Id"), r.Body)
	}
	c := e.Post("/cds-services/order-sign-crd", testenv.Fixture(t, "crd/ig/CRDServiceRequest.json"),
		"Content-Type", "application/json", "X-Request-Id", "trace-hook-2")
	if c.Status != http.StatusOK {
		t.Fatalf("CDS call: status %d: %.300s", c.Status, c.Body)
	}
	for _, tt := range []struct{ msg, id string }{
		{"profile validation (log only, request accepted)", "trace-submit-1"},
		{"cds hook call", "trace-hook-2"},
	} {
		lines := logLines(t, e, tt.msg)
		if len(lines) != 1 {
			t.Fatalf("%d %q log lines, want 1", len(lines), tt.msg)
		}
		if got := lines[0]["request_id"]; got != tt.id {
			t.Errorf("%q line has request_id %v, want %s", tt.msg, got, tt.id)
		}
	}
	ids := map[any]int{}
	for _, l := range logLines(t, e, "request") {
		ids[l["request_id"]]++
	}
	if ids["trace-submit-1"] != 1 || ids["trace-hook-2"] != 1 {
		t.Errorf("access log request ids %v, want one line each for trace-submit-1 and trace-hook-2", ids)
	}
	for _, l := range strings.Split(e.Logs.String(), "\n") {
		if strings.Count(l, `"request_id"`) > 1 {
			t.Errorf("request_id logged twice on a line: %.200s", l)
		}
	}
}
