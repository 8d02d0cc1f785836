package server_test

import (
	"fmt"
	"testing"

	"github.com/priora/priora/internal/testenv"
)

// BenchmarkSubmitHTTP is the whole $submit over HTTP on loopback: intake,
// decisions, the durable write to the embedded store, and the response.
// Each iteration submits a new request (a fresh Bundle.identifier).
func BenchmarkSubmitHTTP(b *testing.B) {
	e := testenv.Start(b)
	base := testenv.Fixture(b, "pas/kit/approval_pa_submit_request_payload.json")
	marker := []byte(`"value": "A12345"`)
	bodies := make([][]byte, 0, 1024)
	for i := 0; i < 1024; i++ {
		bodies = append(bodies, replaceOnce(base, marker, []byte(fmt.Sprintf(`"value": "BENCH-%d"`, i))))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		body := bodies[i%len(bodies)]
		if i >= len(bodies) {
			body = replaceOnce(base, marker, []byte(fmt.Sprintf(`"value": "BENCH-%d"`, i)))
		}
		i++
		if r := e.Post(submitPath, body); r.Status != 200 {
			b.Fatalf("status %d: %s", r.Status, r.Body)
		}
	}
}

func replaceOnce(s, old, new []byte) []byte {
	out := make([]byte, 0, len(s)+len(new))
	for i := 0; i+len(old) <= len(s); i++ {
		if string(s[i:i+len(old)]) == string(old) {
			out = append(out, s[:i]...)
			out = append(out, new...)
			return append(out, s[i+len(old):]...)
		}
	}
	panic("marker not found")
}
