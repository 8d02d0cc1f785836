package store

import (
	"bytes"
	"testing"
)

// TestInflate: what deflate writes inflates back; damaged data is an error,
// not a panic or a runaway allocation.
func TestInflate(t *testing.T) {
	in := bytes.Repeat([]byte(`{"resourceType":"Claim","id":"x"}`), 1000)
	z := deflate(in)
	if len(z) >= len(in)/10 {
		t.Errorf("deflated %d bytes to %d", len(in), len(z))
	}
	for range 2 { // the second time with a pooled reader
		out, err := inflate(z)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("inflate: %d bytes, %v", len(out), err)
		}
	}
	if _, err := inflate(z[:len(z)/2]); err == nil {
		t.Error("a truncated stream inflated without an error")
	}
	if _, err := inflate([]byte("not deflate at all")); err == nil {
		t.Error("garbage inflated without an error")
	}
}
