// Package outbound is the one way Priora makes HTTP requests to addresses
// its clients name: Subscription notifications (channel.endpoint) and CRD's
// queries to an EHR's fhirServer. Those URLs come from callers, so every
// request goes through a Policy that keeps them off Priora's own network:
//
//   - the address is checked when the connection is dialled, after name
//     resolution (net.Dialer.Control), so that no DNS name — or DNS answer
//     changing between a check and the request — reaches a refused address;
//   - loopback, private (RFC 1918, RFC 4193), link-local, multicast,
//     unspecified, CGNAT and the other special-purpose ranges of the IANA
//     registries are refused, IPv4-mapped and IPv4-embedding IPv6 forms
//     included;
//   - https is required; plain http goes only to loopback in insecure
//     development mode, or to a target on the allow list;
//   - redirects are not followed, response bodies are read up to a bound,
//     and a request takes at most MaxTimeout;
//   - no proxy from the environment is used (a proxy would dial for us).
//
// An operator whose EHRs live on an internal network lists them in the
// allow list (PRIORA_OUTBOUND_ALLOW): CIDR prefixes (any port) and host:port
// targets (whatever that name resolves to).
package outbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// MaxTimeout bounds every outbound request, whatever a caller asks for.
const MaxTimeout = 10 * time.Second

// ErrRefused is the cause of a request the policy refused; errors from a
// Policy's clients wrap it (errors.Is), so that callers can log why. What a
// remote caller is told must not tell a refusal from any other failure.
var ErrRefused = errors.New("outbound: target refused by the outbound policy")

// ErrTooLarge is returned when reading a response body beyond the bound.
var ErrTooLarge = errors.New("outbound: response body too large")

// Config is an outbound policy's settings.
type Config struct {
	// Allow lists targets that may be reached although they are in a
	// refused range, and may be reached over plain http: CIDR prefixes or
	// single addresses ("10.20.0.0/16", "fd00::1"), and host:port targets
	// ("ehr.internal:8443", "[fd00::1]:443").
	Allow []string
	// InsecureDev lets loopback targets be reached, over http or https
	// (PRIORA_INSECURE_DEV: a developer's receiver on 127.0.0.1).
	InsecureDev bool
}

// Policy decides which targets outbound requests may reach and makes the
// HTTP clients that enforce it. It is safe for concurrent use.
type Policy struct {
	prefixes  []netip.Prefix
	hostPorts map[string]bool
	dev       bool
}

// New checks cfg and returns its Policy. The zero Config is the strict
// policy: public https targets only.
func New(cfg Config) (*Policy, error) {
	p := &Policy{hostPorts: map[string]bool{}, dev: cfg.InsecureDev}
	var errs []error
	for _, raw := range cfg.Allow {
		e := strings.TrimSpace(raw)
		if e == "" {
			continue
		}
		if pr, err := netip.ParsePrefix(e); err == nil {
			p.prefixes = append(p.prefixes, pr.Masked())
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			p.prefixes = append(p.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		host, port, err := net.SplitHostPort(e)
		if err != nil || host == "" || port == "" || strings.ContainsAny(host, "/ ") {
			errs = append(errs, fmt.Errorf("outbound allow list entry %q is neither a CIDR prefix, an address nor host:port", e))
			continue
		}
		p.hostPorts[hostPort(host, port)] = true
	}
	return p, errors.Join(errs...)
}

// ParseAllow splits a comma-separated allow list (PRIORA_OUTBOUND_ALLOW)
// and checks its entries.
func ParseAllow(s string) ([]string, error) {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	_, err := New(Config{Allow: out})
	return out, err
}

// hostPort is the canonical key of a host:port allow-list entry.
func hostPort(host, port string) string {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Unmap().String()
	}
	return net.JoinHostPort(host, port)
}

// Refusal is why a URL may not be used, worded for the caller who gave it.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return r.Reason }
func (r *Refusal) Unwrap() error { return ErrRefused }

// CheckURL checks what can be known of a target before any request: an
// absolute http(s) URL without user info, https unless the policy allows
// plain http to it, and no literal address (or localhost name) the policy
// refuses. A DNS name is checked again, after resolution, when dialled.
// Errors are *Refusal.
func (p *Policy) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil || u.Opaque != "" {
		return &Refusal{"must be an absolute https URL without user information"}
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return &Refusal{"must be an https URL"}
	}
	plain := scheme == "http"
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[bool]string{true: "80", false: "443"}[plain]
	}
	if p.hostPorts[hostPort(host, port)] {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if err := p.checkAddr(a, plain); err != nil {
			return &Refusal{fmt.Sprintf("%s (%s)", refusedText(plain), err.Error())}
		}
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	localhost := name == "localhost" || strings.HasSuffix(name, ".localhost") // RFC 6761: always loopback
	switch {
	case localhost && !p.dev && !p.allowsLoopback():
		return &Refusal{refusedText(false) + " (localhost is loopback)"}
	case plain && !(localhost && p.dev) && len(p.prefixes) == 0:
		return &Refusal{"must be an https URL (plain http only to loopback in development mode, or to a target on the outbound allow list)"}
	}
	return nil
}

func refusedText(plain bool) string {
	if plain {
		return "must be an https URL to a public address (plain http only to loopback in development mode, or to a target on the outbound allow list)"
	}
	return "must point at a public address: loopback, private, link-local and other special-purpose addresses are refused unless on the outbound allow list"
}

func (p *Policy) allowsLoopback() bool {
	for _, pr := range p.prefixes {
		if pr.Contains(netip.MustParseAddr("127.0.0.1")) || pr.Contains(netip.IPv6Loopback()) {
			return true
		}
	}
	return false
}

// checkAddr says whether an address may be dialled (plain: for http).
func (p *Policy) checkAddr(a netip.Addr, plain bool) error {
	a = a.Unmap().WithZone("")
	for _, pr := range p.prefixes {
		if pr.Contains(a) {
			return nil
		}
	}
	if p.dev && a.IsLoopback() {
		return nil
	}
	why := special(a)
	switch {
	case plain && why != "":
		return fmt.Errorf("%s is %s: plain http goes only to loopback in development mode or to a target on the outbound allow list", a, why)
	case plain:
		return fmt.Errorf("%s is a public address: https only", a)
	case why != "":
		return fmt.Errorf("%s is %s", a, why)
	}
	return nil
}

// specialRanges are the IANA special-purpose ranges (RFC 6890 and its
// updates) that netip's predicates do not cover, and the IPv6 forms that
// embed an IPv4 address (a NAT64 or 6to4 gateway would carry a request to
// any IPv4 address, private ones included).
var specialRanges = func() []struct {
	p   netip.Prefix
	why string
} {
	list := []struct{ cidr, why string }{
		{"0.0.0.0/8", "\"this network\""},
		{"100.64.0.0/10", "shared address space (CGNAT)"},
		{"192.0.0.0/24", "reserved for IETF protocol assignments"},
		{"192.0.2.0/24", "documentation"},
		{"192.88.99.0/24", "6to4 relay anycast"},
		{"198.18.0.0/15", "benchmarking"},
		{"198.51.100.0/24", "documentation"},
		{"203.0.113.0/24", "documentation"},
		{"240.0.0.0/4", "reserved"},
		{"255.255.255.255/32", "broadcast"},
		{"::/96", "IPv4-compatible"},
		{"64:ff9b::/96", "NAT64"},
		{"64:ff9b:1::/48", "local-use NAT64"},
		{"100::/64", "discard-only"},
		{"2001::/23", "reserved for IETF protocol assignments (Teredo included)"},
		{"2001:db8::/32", "documentation"},
		{"2002::/16", "6to4"},
		{"3fff::/20", "documentation"},
		{"5f00::/16", "segment routing"},
		{"fec0::/10", "site-local"},
	}
	out := make([]struct {
		p   netip.Prefix
		why string
	}, len(list))
	for i, l := range list {
		out[i].p, out[i].why = netip.MustParsePrefix(l.cidr), l.why
	}
	return out
}()

// special names the special-purpose range a holds, or "" for a public
// unicast address.
func special(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "not an address"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	}
	for _, r := range specialRanges {
		if r.p.Contains(a) {
			return r.why
		}
	}
	return ""
}

// Client returns an HTTP client under the policy: requests take at most
// timeout (capped at MaxTimeout), redirects are returned rather than
// followed, and reading a response body beyond maxBody fails with
// ErrTooLarge.
func (p *Policy) Client(timeout time.Duration, maxBody int64) *http.Client {
	if timeout <= 0 || timeout > MaxTimeout {
		timeout = MaxTimeout
	}
	return &http.Client{
		Timeout:       timeout,
		Transport:     &transport{https: p.transport(false, timeout), http: p.transport(true, timeout), max: maxBody},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// transport sends https and http requests each through its own
// http.Transport, whose dialer applies the rules of that scheme.
type transport struct {
	https, http *http.Transport
	max         int64
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var rt *http.Transport
	switch req.URL.Scheme {
	case "https":
		rt = t.https
	case "http":
		rt = t.http
	default:
		return nil, fmt.Errorf("%w: scheme %q", ErrRefused, req.URL.Scheme)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if t.max > 0 {
		resp.Body = &limitedBody{rc: resp.Body, left: t.max}
	}
	return resp, nil
}

func (p *Policy) transport(plain bool, timeout time.Duration) *http.Transport {
	checked := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: p.control(plain)}
	trusted := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy: nil, // never from the environment: a proxy would dial on our behalf
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, port, err := net.SplitHostPort(addr); err == nil && p.hostPorts[hostPort(host, port)] {
				return trusted.DialContext(ctx, network, addr) // the operator vouches for this name
			}
			return checked.DialContext(ctx, network, addr)
		},
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        60 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      !plain,
	}
}

// control checks each address the dialer is about to connect to, after
// name resolution.
func (p *Policy) control(plain bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: cannot read dial address %q", ErrRefused, address)
		}
		if err := p.checkAddr(ap.Addr(), plain); err != nil {
			return fmt.Errorf("%w: %v", ErrRefused, err)
		}
		return nil
	}
}

// limitedBody fails a read that goes beyond the bound, rather than
// silently truncating the body.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(buf []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, ErrTooLarge
		}
		return 0, err
	}
	if int64(len(buf)) > b.left {
		buf = buf[:b.left]
	}
	n, err := b.rc.Read(buf)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
