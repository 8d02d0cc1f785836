package reqlog

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
)

func TestHandlerAddsRequestID(t *testing.T) {
	var buf bytes.Buffer
	log := Logger(Logger(slog.New(slog.NewJSONHandler(&buf, nil)))).With("service", "x")
	log.InfoContext(With(context.Background(), "req-1"), "with")
	log.InfoContext(context.Background(), "without")
	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 || lines[0]["request_id"] != "req-1" || lines[0]["service"] != "x" {
		t.Errorf("first line %v, want request_id req-1 and service x", lines[0])
	}
	if _, ok := lines[1]["request_id"]; ok || bytes.Count(buf.Bytes(), []byte("request_id")) != 1 {
		t.Errorf("request_id logged %d times, want once: %s", bytes.Count(buf.Bytes(), []byte("request_id")), buf.Bytes())
	}
}
