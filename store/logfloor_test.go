package store

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestLevelFloor checks that records below the floor are dropped and that
// attributes and groups added on the way reach the records that pass.
func TestLevelFloor(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(levelFloor{Handler: slog.NewTextHandler(&buf, nil), min: slog.LevelError})
	l := log.With("conn", 7).WithGroup("cmd").With("name", "insert")
	l.Warn("dropped")
	l.Error("kept", "n", 1)
	got := buf.String()
	if strings.Contains(got, "dropped") {
		t.Errorf("a WARN record passed the floor: %s", got)
	}
	for _, want := range []string{"msg=kept", "conn=7", "cmd.name=insert", "cmd.n=1"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q missing from %s", want, got)
		}
	}
	if l.Handler().Enabled(context.Background(), slog.LevelInfo) {
		t.Error("INFO enabled below the floor")
	}
}
