package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// peerListener is a real TCP listener whose connections report the peer
// addresses the test names, one per accepted connection, in order: the
// loopback interface has one IPv6 address, an attacker's host a /64.
type peerListener struct {
	net.Listener
	peers chan netip.AddrPort
}

type peerConn struct {
	net.Conn
	peer netip.AddrPort
}

func (c peerConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.peer) }

func (l peerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return peerConn{c, <-l.peers}, nil
}

// TestConnCapIPv6Network: an IPv6 client holds a /64 (RFC 4291, 7421):
// it can open each connection from another address of it. The cap counts
// the /64 as one address, so a host cannot multiply its share by
// changing its low 64 bits; IPv4 (also IPv4-mapped IPv6, and IPv4
// clients translated by NAT64) counts per address.
func TestConnCapIPv6Network(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peers := make(chan netip.AddrPort, 16)
	r := &refusals{}
	l := LimitListener(peerListener{tcp, peers}, 1, nil, r.count).(*limitListener)
	accepted := acceptLoop(t, l)
	for _, tc := range []struct {
		peer     string
		accepted bool
	}{
		{"[2001:db8:1:2::1]:1000", true},
		{"[2001:db8:1:2::2]:1000", false},                  // same /64
		{"[2001:db8:1:2:ffff:ffff:ffff:ffff]:1000", false}, // same /64
		{"[2001:db8:1:3::1]:1000", true},                   // the next /64
		{"192.0.2.1:1000", true},
		{"[::ffff:192.0.2.1]:1000", false}, // the same IPv4 address
		{"192.0.2.2:1000", true},
		// IPv4 clients translated to IPv6 (NAT64): one per IPv4 address.
		{"[64:ff9b::c000:201]:1000", true},
		{"[64:ff9b::c000:202]:1000", true},
		{"[64:ff9b::c000:202]:1001", false},
		{"[64:ff9b:1::c000:201]:1000", true},
		{"[64:ff9b:1::c000:202]:1000", true},
	} {
		peers <- netip.MustParseAddrPort(tc.peer)
		c := dial(t, l)
		if !tc.accepted {
			// Over the cap: answered 429 by the listener, given no slot.
			_, _ = c.Write([]byte("GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n\r\n"))
			answer := make(chan string, 1)
			go func() {
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					answer <- err.Error()
					return
				}
				answer <- resp.Status
			}()
			select {
			case <-accepted:
				t.Fatalf("%s: given a slot of its own, want 429 (over the cap)", tc.peer)
			case a := <-answer:
				if a != "429 Too Many Requests" {
					t.Fatalf("%s: %s, want 429 (over the cap)", tc.peer, a)
				}
			}
			continue
		}
		select {
		case <-accepted:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: not accepted, want a slot of its own", tc.peer)
		}
	}
	if a := r.answered.Load(); a != 4 {
		t.Errorf("%d refused, want 4", a)
	}
}

// TestRefusalFormatAbsoluteTarget: a request line in absolute form (RFC
// 9112 3.2.2: servers must accept it; net/http routes it by its path) is
// answered in the format of the endpoint it names, as in origin form.
func TestRefusalFormatAbsoluteTarget(t *testing.T) {
	l, accepted, _ := capped(t, time.Minute, time.Minute, 3)
	dial(t, l)
	<-accepted
	for _, line := range []string{
		"POST http://priora.example/cds-services/order-sign-crd?x=1 HTTP/1.1\r\n",
		"POST https://priora.example:8443/cds-services HTTP/1.1\r\n",
		"POST /cds-services/order-sign-crd HTTP/1.1\r\n",
	} {
		c := dial(t, l)
		_, _ = c.Write([]byte(line + "Host: x\r\n\r\n"))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusTooManyRequests || !strings.HasPrefix(string(b), `{"error":`) {
			t.Errorf("%q over the cap: %d %s, want a CDS Hooks error", line, resp.StatusCode, b)
		}
	}
}
