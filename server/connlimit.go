package server

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/fhir"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The per-address connection cap (PRIORA_MAX_CONNS_PER_IP).
//
// A connection over the cap has usually already carried a request when
// the server accepts it: closing it then, unread, sends the client a reset
// and the client sees "EOF" or "connection reset by peer" with no reason
// given (#19). Instead it is answered 429 Too Many Requests with
// Retry-After and Connection: close, in the wire format of the endpoint it
// asked for, and closed gracefully: the server half-closes its end, reads
// what the client still sends until the client closes or a short deadline,
// and only then closes, so the answer is not destroyed by a reset.
//
// 429 rather than 503: the refusal is about this client (its address holds
// too many connections), not about the server, which goes on serving
// everyone else; a load balancer that reads 503 as "this backend is
// unhealthy" would take a healthy replica out of service.
//
// The refusal cannot become a way around the cap: a refused connection
// takes no slot, is held for at most refuseHeadWait + refuseLinger, and at
// most maxRefusing are being answered at once (for all addresses
// together); beyond that an over-cap connection is closed at once, as it
// was before.

const (
	// maxRefusing bounds the over-cap connections being answered at once.
	// Each holds a goroutine, a socket and a 4 KB buffer for at most
	// 1.5 s (usually under a millisecond: the client closes on reading the
	// answer). A client whose connections all drop at once re-dials them
	// in a burst (measured: 512 load-tool connections, re-dialled within a
	// millisecond, met 23 resets with a bound of 64 and none unbounded).
	maxRefusing = 256
	// refuseHeadWait is how long a refused connection has to send its
	// request line (to choose the answer's format); without one it is
	// answered as FHIR.
	refuseHeadWait = 500 * time.Millisecond
	// refuseHeadBytes bounds what is read to find the request line.
	refuseHeadBytes = 4 << 10
	// refuseLinger is how long the server reads after its answer, waiting
	// for the client to close its end; refuseDrainBytes bounds what it
	// reads meanwhile.
	refuseLinger     = time.Second
	refuseDrainBytes = 256 << 10
	// refuseRetryAfter is the Retry-After of the answer, in seconds.
	refuseRetryAfter = 1
)

// LimitListener caps the open connections per client address (the TCP
// peer; for IPv6 its /64, see capKey) at n; a connection over the cap is answered 429 and closed (see
// above). When the server wraps ln in TLS, tc is its TLS configuration:
// refusals are answered over TLS (HTTP/1.1, or HTTP/2 to a client that
// offers nothing else). refused, when not nil, is
// called for each connection over the cap: answered (429 sent) or closed
// unanswered. n ≤ 0 returns ln unchanged.
func LimitListener(ln net.Listener, n int, tc *tls.Config, refused func(answered bool)) net.Listener {
	if n <= 0 {
		return ln
	}
	if refused == nil {
		refused = func(bool) {}
	}
	l := &limitListener{Listener: ln, max: n, open: map[netip.Addr]int{}, refusing: map[net.Conn]struct{}{},
		headWait: refuseHeadWait, linger: refuseLinger, maxRefusing: maxRefusing, refused: refused}
	if tc != nil {
		l.tls = tc.Clone()
		// HTTP/1.1 for clients that offer it, HTTP/2 for those that
		// offer nothing else (h2Request).
		l.tls.NextProtos = []string{"http/1.1", "h2"}
	}
	return l
}

type limitListener struct {
	net.Listener
	max     int
	tls     *tls.Config
	refused func(answered bool)
	// headWait, linger and maxRefusing are the constants above (tests
	// change them).
	headWait, linger time.Duration
	maxRefusing      int

	mu       sync.Mutex
	open     map[netip.Addr]int
	refusing map[net.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, err := netip.ParseAddrPort(conn.RemoteAddr().String())
		if err != nil {
			return conn, nil // not an IP connection
		}
		ip := capKey(ap.Addr())
		l.mu.Lock()
		if l.open[ip] < l.max {
			l.open[ip]++
			l.mu.Unlock()
			return &limitConn{Conn: conn, l: l, ip: ip}, nil
		}
		answer := !l.closed && len(l.refusing) < l.maxRefusing
		if answer {
			l.refusing[conn] = struct{}{}
			l.wg.Add(1)
		}
		l.mu.Unlock()
		if !answer {
			l.refused(false)
			conn.Close()
			continue
		}
		go l.refuse(conn)
	}
}

// Close stops accepting, ends the refusals under way and waits for them.
func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	for c := range l.refusing {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	return err
}

// capKey is the address a connection is counted against: an IPv4 peer's
// address (also when IPv4-mapped, or translated into the NAT64 prefixes
// 64:ff9b::/96 and 64:ff9b:1::/48, RFC 6052 and 8215), an IPv6 peer's
// /64. An IPv6 host is given a /64 (RFC 4291, RFC 7421) and can open each
// connection from another address in it; counted per address, one host
// could hold any number of connections.
func capKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is4() || nat64.Contains(a) || nat64Local.Contains(a) {
		return a
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return a
	}
	return p.Addr()
}

var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
)

// refuse answers an over-cap connection 429 and closes it gracefully.
func (l *limitListener) refuse(conn net.Conn) {
	defer l.wg.Done()
	answered := false
	defer func() {
		l.mu.Lock()
		delete(l.refusing, conn)
		l.mu.Unlock()
		if !answered {
			l.refused(false)
		}
		conn.Close()
	}()
	_ = conn.SetDeadline(time.Now().Add(l.headWait))
	c := conn // what HTTP is read from and written to
	h2 := false
	if l.tls != nil {
		tc := tls.Server(conn, l.tls)
		if tc.Handshake() != nil {
			return
		}
		c, h2 = tc, tc.ConnectionState().NegotiatedProtocol == "h2"
	}
	var path string
	var write func(ctype string, body []byte) error
	if h2 {
		fr, stream, p, ok := h2Request(c)
		if !ok {
			return
		}
		path = p
		write = func(ctype string, body []byte) error { return h2Answer(fr, stream, ctype, body) }
	} else {
		p, ok := requestPath(c)
		if !ok {
			return
		}
		path = p
		write = func(ctype string, body []byte) error {
			var b bytes.Buffer
			fmt.Fprintf(&b, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: %s\r\nContent-Length: %d\r\nRetry-After: %d\r\nConnection: close\r\n\r\n",
				ctype, len(body), refuseRetryAfter)
			b.Write(body)
			_, err := c.Write(b.Bytes())
			return err
		}
	}
	ctype, body := refusalBody(path, l.max)
	_ = conn.SetDeadline(time.Now().Add(l.linger))
	// Counted before it is written, so that a client that has read the
	// answer finds it counted.
	answered = true
	l.refused(true)
	if write(ctype, body) != nil {
		return
	}
	// Half-close (over TLS: close_notify first), then read until the
	// client closes (EOF), the deadline or the byte bound: closing with
	// unread data in the socket would send a reset, which can reach the
	// client before it read the answer and destroy it.
	if tc, ok := c.(*tls.Conn); ok {
		_ = tc.CloseWrite()
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c, refuseDrainBytes))
}

// requestPath reads the request line (at most refuseHeadBytes, until the
// deadline set on conn) and returns its target's path, or "" when none
// arrived in time. ok is false when the client closed or the connection
// failed before its request line: there is no one to answer.
func requestPath(conn net.Conn) (path string, ok bool) {
	buf := make([]byte, refuseHeadBytes)
	n := 0
	for n < len(buf) {
		m, err := conn.Read(buf[n:])
		n += m
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			// METHOD SP request-target SP HTTP-version
			f := strings.Fields(string(buf[:i]))
			if len(f) != 3 {
				return "", true
			}
			if u, err := url.ParseRequestURI(f[1]); err == nil {
				return u.Path, true // origin or absolute form
			}
			return "", true
		}
		if err != nil {
			var ne net.Error
			return "", errors.As(err, &ne) && ne.Timeout()
		}
	}
	return "", true
}

// h2Request reads, over HTTP/2 (TLS, ALPN h2), the client's connection
// preface and frames up to its first request's headers, and returns that
// request's stream and path. ok is false when none arrived: the deadline
// set on conn bounds the wait, maxFrames the frames read, the frame and
// header list sizes the memory.
func h2Request(conn net.Conn) (fr *http2.Framer, stream uint32, path string, ok bool) {
	const maxFrames = 16
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(conn, preface); err != nil || string(preface) != http2.ClientPreface {
		return nil, 0, "", false
	}
	fr = http2.NewFramer(conn, conn)
	fr.SetMaxReadFrameSize(16 << 10) // HTTP/2's initial SETTINGS_MAX_FRAME_SIZE
	fr.ReadMetaHeaders = hpack.NewDecoder(refuseHeadBytes, nil)
	fr.MaxHeaderListSize = refuseHeadBytes
	if fr.WriteSettings() != nil {
		return nil, 0, "", false
	}
	acked := false
	for range maxFrames {
		f, err := fr.ReadFrame()
		if err != nil {
			return nil, 0, "", false
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			return fr, f.StreamID, f.PseudoValue("path"), true
		case *http2.SettingsFrame:
			if !f.IsAck() && !acked {
				acked = true
				if fr.WriteSettingsAck() != nil {
					return nil, 0, "", false
				}
			}
		}
	}
	return nil, 0, "", false
}

// h2Answer writes the 429 on stream and GOAWAY (HTTP/2's Connection:
// close): no stream after this one is worked on.
func h2Answer(fr *http2.Framer, stream uint32, ctype string, body []byte) error {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":status", "429"}, {"content-type", ctype},
		{"content-length", fmt.Sprint(len(body))}, {"retry-after", fmt.Sprint(refuseRetryAfter)}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		return err
	}
	if err := fr.WriteData(stream, true, body); err != nil {
		return err
	}
	return fr.WriteGoAway(stream, http2.ErrCodeNo, nil)
}

// refusalBody is the 429's body in the format of the endpoint at path: a
// CDS Hooks error, an OAuth 2.0 error or a FHIR OperationOutcome (as
// renderError writes them).
func refusalBody(path string, max int) (ctype string, body []byte) {
	msg := fmt.Sprintf("too many open connections from this address (at most %d per IPv4 address or IPv6 /64, PRIORA_MAX_CONNS_PER_IP); reuse or close idle connections, or retry after %d s", max, refuseRetryAfter)
	switch {
	case path == "/cds-services" || strings.HasPrefix(path, "/cds-services/"):
		body, _ = json.Marshal(map[string]string{"error": msg})
		return "application/json", body
	case path == auth.TokenPath:
		body, _ = json.Marshal(map[string]string{"error": "slow_down", "error_description": msg})
		return "application/json", body
	}
	return fhirJSON, fhir.OperationOutcome(fhir.IssuesOf(&fhir.Error{Kind: fhir.TooMany, Message: msg}))
}

type limitConn struct {
	net.Conn
	l    *limitListener
	ip   netip.Addr
	once sync.Once
}

func (c *limitConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.open[c.ip]--; c.l.open[c.ip] <= 0 {
			delete(c.l.open, c.ip)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// CloseWrite half-closes the connection (TCP). net/http half-closes before
// it closes a connection it stopped reading (431, 413): without it the
// client would meet a reset instead of the end of the answer.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
