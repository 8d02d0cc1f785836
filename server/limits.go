package server

import (
	"fmt"
	"math"
	"net"
	"sync"
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

// ipKey keys unauthenticated requests by the connection's address. Headers
// such as X-Forwarded-For are not trusted: behind a proxy, every request
// shares the proxy's bucket.
func ipKey(c echo.Context) string { return "ip:" + remoteIP(c) }

func remoteIP(c echo.Context) string {
	host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
	if err != nil {
		return c.Request().RemoteAddr
	}
	return host
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
