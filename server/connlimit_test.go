package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
	"golang.org/x/net/http2"
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

// TestConnCapHTTP2Only: over TLS, a client over the cap that offers
// HTTP/2 alone (ALPN "h2" without "http/1.1": Go's http2.Transport, .NET
// asking for exactly 2.0) is answered 429 over HTTP/2, in its endpoint's
// format; the refusal used to offer HTTP/1.1 only, and such a client met
// the TLS alert "no application protocol" instead of an answer.
func TestConnCapHTTP2Only(t *testing.T) {
	e := startCappedTLS(t)
	base := "https://" + strings.TrimPrefix(e.URL, "http://")
	hook := testenv.Fixture(t, "crd/ig/CRDServiceRequest.json")
	for i := range 3 {
		for _, tc := range []struct {
			path string
			body []byte
			want string
		}{
			{"/fhir/metadata", nil, `"resourceType":"OperationOutcome"`},
			{"/cds-services/order-sign-crd", hook, `{"error":`},
		} {
			// A new transport each time: one connection, refused.
			c := &http.Client{Timeout: 20 * time.Second,
				Transport: &http2.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
			var resp *http.Response
			var err error
			if tc.body == nil {
				resp, err = c.Get(base + tc.path)
			} else {
				resp, err = c.Post(base+tc.path, "application/json", bytes.NewReader(tc.body))
			}
			if err != nil {
				t.Fatalf("#%d %s over the cap, HTTP/2 only: %v, want a 429 answer", i, tc.path, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusTooManyRequests || resp.ProtoMajor != 2 ||
				resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(b), tc.want) ||
				!strings.Contains(string(b), "PRIORA_MAX_CONNS_PER_IP") {
				t.Fatalf("#%d %s over the cap, HTTP/2 only: %s %d Retry-After %q %v %s", i, tc.path, resp.Proto,
					resp.StatusCode, resp.Header.Get("Retry-After"), err, b)
			}
		}
	}
	// Another address is served over HTTP/2 as usual.
	tr := &http2.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialTLSContext: func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
			d := tls.Dialer{NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}, Config: cfg}
			return d.DialContext(ctx, network, addr)
		}}
	resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Get(base + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("another address over HTTP/2: %v %v", resp, err)
	}
	resp.Body.Close()
}

// startCappedTLS starts Priora over TLS with a cap of one connection per
// address, and takes the loopback address's one slot.
func startCappedTLS(t *testing.T) *testenv.Env {
	certFile, keyFile := selfSigned(t, t.TempDir())
	e := testenv.Start(t, testenv.WithConfig(func(c *app.Config) {
		c.Security.TLSCert, c.Security.TLSKey = certFile, keyFile
		c.Limits.ConnsPerIP = 1
	}))
	held := dialRaw(t, e, "")
	t.Cleanup(func() { held.Close() })
	return e
}
