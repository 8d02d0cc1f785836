package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/priora/priora/internal/outbound"
)

// scheme is https when TLS is configured.
func (c *config) scheme() string {
	if c.TLSCert != "" {
		return "https"
	}
	return "http"
}

// checkSecurity checks the security settings and fills c.security. It
// reads the listen host from c.Addr itself (its argument may have been
// rewritten for the base URL).
func (c *config) checkSecurity(string) error {
	var errs []error
	host, _, _ := net.SplitHostPort(c.Addr)
	sec := &c.security
	switch strings.ToLower(c.InsecureDev) {
	case "", "0", "false", "no":
	case "1", "true", "yes":
		sec.InsecureDev = true
		if !isLoopback(host) {
			errs = append(errs, fmt.Errorf("PRIORA_INSECURE_DEV is refused: PRIORA_ADDR %q is not a loopback address (use 127.0.0.1)", c.Addr))
		}
	default:
		errs = append(errs, fmt.Errorf("PRIORA_INSECURE_DEV %q must be 1 or 0", c.InsecureDev))
	}
	sec.ClientsFile = c.ClientsFile
	switch {
	case (c.TLSCert == "") != (c.TLSKey == ""):
		errs = append(errs, errors.New("PRIORA_TLS_CERT and PRIORA_TLS_KEY go together"))
	case c.TLSCert != "":
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			errs = append(errs, fmt.Errorf("PRIORA_TLS_CERT/PRIORA_TLS_KEY: %w", err))
		}
		sec.TLSCert, sec.TLSKey = c.TLSCert, c.TLSKey
	}
	r, b, err := parseRateLimit(c.RateLimit)
	if err != nil {
		errs = append(errs, err)
	}
	sec.RateLimit, sec.RateBurst = r, b
	if sec.OutboundAllow, err = outbound.ParseAllow(c.OutboundAllow); err != nil {
		errs = append(errs, fmt.Errorf("PRIORA_OUTBOUND_ALLOW: %w", err))
	}
	if n, err := strconv.Atoi(strings.TrimSpace(c.MaxSubscriptions)); err != nil || n < 1 || n > 10000 {
		errs = append(errs, fmt.Errorf("PRIORA_MAX_SUBSCRIPTIONS %q must be a number from 1 to 10000", c.MaxSubscriptions))
	} else {
		c.maxSubscriptions = n
	}
	return errors.Join(errs...)
}

// parseRateLimit reads "RATE[,BURST]"; the burst defaults to twice the rate.
func parseRateLimit(s string) (float64, int, error) {
	bad := fmt.Errorf("PRIORA_RATE_LIMIT %q must be RATE[,BURST], e.g. 20,40 (0 = no limit)", s)
	rs, bs, hasBurst := strings.Cut(strings.TrimSpace(s), ",")
	r, err := strconv.ParseFloat(strings.TrimSpace(rs), 64)
	if err != nil || r < 0 || r > 1e6 {
		return 0, 0, bad
	}
	b := int(2 * r)
	if hasBurst {
		b, err = strconv.Atoi(strings.TrimSpace(bs))
		if err != nil || b < 1 || b > 1e6 {
			return 0, 0, bad
		}
	}
	return r, max(b, 1), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
