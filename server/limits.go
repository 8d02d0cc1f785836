package server

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/priora/priora/fhir"
)

// limiter is a token bucket per key (a client id, or an address for
// requests not yet authenticated).
type limiter struct {
	every rate.Limit
	burst int

	mu   sync.Mutex
	m    map[string]*bucket
	tick int
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

func newLimiter(perSecond float64, burst int) *limiter {
	if perSecond <= 0 {
		return nil
	}
	if burst < 1 {
		burst = max(1, int(math.Ceil(perSecond)))
	}
	return &limiter{every: rate.Limit(perSecond), burst: burst, m: map[string]*bucket{}}
}

// allow takes a token for key; when there is none it reports how long to
// wait.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[key]
	if b == nil {
		b = &bucket{l: rate.NewLimiter(l.every, l.burst)}
		l.m[key] = b
	}
	b.seen = now
	if l.tick++; l.tick%1024 == 0 {
		for k, v := range l.m {
			if now.Sub(v.seen) > 10*time.Minute {
				delete(l.m, k)
			}
		}
	}
	if b.l.AllowN(now, 1) {
		return true, 0
	}
	r := b.l.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
}

// allow applies the rate limit to key: nil, or a TooMany error whose
// RetryAfter becomes the Retry-After header.
func (s *Server) allow(c echo.Context, key string) error {
	if s.limiter == nil {
		return nil
	}
	ok, wait := s.limiter.allow(key, time.Now())
	if ok {
		return nil
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	return &fhir.Error{Kind: fhir.TooMany, Message: fmt.Sprintf("too many requests; retry after %d s", secs), RetryAfter: time.Duration(secs) * time.Second}
}

// allowToken applies the token endpoint's own rate limit to key.
func (s *Server) allowToken(c echo.Context, key string) error {
	if s.tokenLimiter == nil {
		return nil
	}
	ok, wait := s.tokenLimiter.allow(key, time.Now())
	if ok {
		return nil
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	return &fhir.Error{Kind: fhir.TooMany, Code: "slow_down", Message: fmt.Sprintf("too many token requests; retry after %d s", secs), RetryAfter: time.Duration(secs) * time.Second}
}

// ipKey keys unauthenticated requests by the client's address: the
// connection's peer, or behind a trusted proxy the address it forwarded
// (clientAddr).
func ipKey(c echo.Context) string { return "ip:" + remoteIP(c) }

func remoteIP(c echo.Context) string {
	host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
	if err != nil {
		return c.Request().RemoteAddr
	}
	return host
}

// clientAddr replaces the request's RemoteAddr with the client's address
// from X-Forwarded-For when the peer is a trusted proxy
// (PRIORA_TRUSTED_PROXIES): the rightmost address that is not itself a
// trusted proxy. Every later use of the address — rate-limit keys, the
// audit trail, the desk's sign-in limits — sees the client. A peer that is
// not trusted cannot choose its address: its X-Forwarded-For is ignored.
func (s *Server) clientAddr(next echo.HandlerFunc) echo.HandlerFunc {
	trusted := s.cfg.Limits.TrustedProxies
	if len(trusted) == 0 {
		return next
	}
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	return func(c echo.Context) error {
		r := c.Request()
		peer, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !isTrusted(peer.Addr()) {
			return next(c)
		}
		client := peer.Addr()
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			client = a.Unmap()
			if !isTrusted(client) {
				break
			}
		}
		r.RemoteAddr = netip.AddrPortFrom(client, 0).String()
		return next(c)
	}
}

// Slow bodies before authentication. Every request has PreAuthTimeout
// (http.Server.ReadTimeout) to send its headers and body; authentication
// extends the deadline (extendRead). A request refused before it was
// authenticated — 401, 429, 404, 415 … — whose body was not read is
// answered with Connection: close and its connection closed at once:
// Go's server would otherwise read up to 256 KB of the unwanted body
// after the answer, as slowly as the client cares to send it.

// ReadTimeout is how long an authenticated request has for its body.
const ReadTimeout = 60 * time.Second

// trackedBody notes whether the handler read the body to its end.
type trackedBody struct {
	io.ReadCloser
	eof bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (s *Server) closeUnread(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
			return next(c)
		}
		body := &trackedBody{ReadCloser: r.Body}
		r.Body = body
		drop := false
		res := c.Response()
		res.Before(func() {
			if res.Status >= 400 && !body.eof && access(c) == nil {
				res.Header().Set("Connection", "close")
				drop = true
			}
		})
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		if drop {
			// The answer is written; fail the server's read of the rest of
			// the body, so that the connection closes now.
			_ = http.NewResponseController(res).SetReadDeadline(time.Now())
		}
		return nil
	}
}

// extendRead gives an authenticated request the full read timeout for its
// body.
func extendRead(c echo.Context) {
	_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(ReadTimeout))
}

// transportSecurity adds HSTS when Priora is served over TLS.
func (s *Server) transportSecurity(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.TLS {
			c.Response().Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		return next(c)
	}
}

// Limits bound what one request and one client may cost.
type Limits struct {
	// JSON bounds every JSON body (fhir.Scan): depth, values, array
	// lengths, Bundle entries. Zero fields take fhir.DefaultLimits.
	JSON fhir.Limits
	// Submits is how many $submit and $inquire requests are worked on at
	// once (default 4); up to max(512, 64×Submits) more wait up to
	// QueueWait for a slot, and beyond that the answer is 503 with
	// Retry-After. Each one in work
	// holds its body and the parse trees built from it, so this bounds the
	// memory PAS traffic can take.
	Submits int
	// QueueWait is how long a $submit or $inquire waits for a slot
	// (default 10 s).
	QueueWait time.Duration
	// ConnsPerIP caps the open connections of one client address
	// (LimitListener); 0 is no cap.
	ConnsPerIP int
	// PreAuthTimeout is how long a request has to send its whole body
	// before it is authenticated (default 10 s); authenticated requests get
	// the full read timeout.
	PreAuthTimeout time.Duration
	// TrustedProxies are the load balancers whose X-Forwarded-For names
	// the client address; other peers' X-Forwarded-For is ignored.
	TrustedProxies []netip.Prefix
}

// WithDefaults fills the zero fields with their defaults.
func (l Limits) WithDefaults() Limits {
	d := fhir.DefaultLimits
	if l.JSON.MaxDepth <= 0 {
		l.JSON.MaxDepth = d.MaxDepth
	}
	if l.JSON.MaxValues <= 0 {
		l.JSON.MaxValues = d.MaxValues
	}
	if l.JSON.MaxArray <= 0 {
		l.JSON.MaxArray = d.MaxArray
	}
	if l.JSON.MaxEntries <= 0 {
		l.JSON.MaxEntries = d.MaxEntries
	}
	if l.Submits <= 0 {
		l.Submits = 4
	}
	if l.QueueWait <= 0 {
		l.QueueWait = 10 * time.Second
	}
	if l.PreAuthTimeout <= 0 {
		l.PreAuthTimeout = 10 * time.Second
	}
	return l
}

// gate admits a bounded number of requests to expensive work; a bounded
// number more wait for a slot.
type gate struct {
	slots   chan struct{}
	waiting atomic.Int64
	maxWait int64
}

func newGate(n int) *gate {
	// A waiting request holds no body (the slot is taken before the body is
	// read): only its goroutine and connection. So many may wait.
	return &gate{slots: make(chan struct{}, n), maxWait: int64(max(512, 64*n))}
}

// enter takes a slot, waiting up to wait; ok is false when the work must
// be refused.
func (g *gate) enter(ctx context.Context, wait time.Duration) (release func(), ok bool) {
	select {
	case g.slots <- struct{}{}:
		return g.leave, true
	default:
	}
	if g.waiting.Add(1) > g.maxWait {
		g.waiting.Add(-1)
		return nil, false
	}
	defer g.waiting.Add(-1)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return g.leave, true
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, false
}

func (g *gate) leave() { <-g.slots }

// heavyWork guards $submit and $inquire: the slot is taken before the body
// is read, so requests waiting or refused hold no body in memory.
func (s *Server) heavyWork(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		release, ok := s.heavy.enter(c.Request().Context(), s.cfg.Limits.QueueWait)
		if !ok {
			return &fhir.Error{Kind: fhir.Unavailable, RetryAfter: 2 * time.Second,
				Message: "the server is busy with other requests; retry after 2 s (limit PRIORA_SUBMIT_CONCURRENCY)"}
		}
		defer release()
		return next(c)
	}
}
