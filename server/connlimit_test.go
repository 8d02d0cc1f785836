package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
)

// TestCappedConnClosesGracefully: a connection under the per-address cap
// keeps net/http's graceful close. When the server gives up on a request
// it has not read to its end (431 for oversized headers, 413 for a body
// over the limit) it half-closes, so the client reads the whole answer
// and its end, and only then closes. The cap's connection wrapper used to
// hide the TCP half-close: with the cap on (512 by default) the client
// read "connection reset by peer" in place of the end of the answer,
// half a second later.
func TestCappedConnClosesGracefully(t *testing.T) {
	e := testenv.Start(t, testenv.WithConfig(func(c *app.Config) { c.Limits.ConnsPerIP = 512 }))
	conn := dialRaw(t, e, "")
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	// Headers over the server's 64 KB bound, and more after them: the
	// server stops reading with data unread.
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s", strings.Repeat("a", 200<<10))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The 431 has no Content-Length: its body ends at the server's close.
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || err != nil {
		t.Fatalf("oversized headers: %d %q %v; want the whole 431 answer and its end, not a reset", resp.StatusCode, b, err)
	}
}
