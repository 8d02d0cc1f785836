package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// checkLimits reads the request and connection limits into c.limits.
func (c *config) checkLimits() error {
	var errs []error
	num := func(env, v string, min int, dst *int) {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < min {
			errs = append(errs, fmt.Errorf("%s %q must be a whole number ≥ %d", env, v, min))
			return
		}
		*dst = n
	}
	l := &c.limits
	num("PRIORA_MAX_ENTRIES", c.MaxEntries, 1, &l.JSON.MaxEntries)
	num("PRIORA_MAX_ARRAY", c.MaxArray, 1, &l.JSON.MaxArray)
	num("PRIORA_MAX_JSON_VALUES", c.MaxJSONValues, 100, &l.JSON.MaxValues)
	num("PRIORA_SUBMIT_CONCURRENCY", c.SubmitConcurrency, 1, &l.Submits)
	num("PRIORA_MAX_CONNS_PER_IP", c.MaxConnsPerIP, 0, &l.ConnsPerIP)
	ps, err := parseCIDRs(c.TrustedProxies)
	if err != nil {
		errs = append(errs, err)
	}
	l.TrustedProxies = ps
	return errors.Join(errs...)
}

// parseCIDRs reads comma-separated CIDRs (a bare address is one host).
func parseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			a, err := netip.ParseAddr(part)
			if err != nil {
				return nil, fmt.Errorf("PRIORA_TRUSTED_PROXIES: %q is not an address or CIDR", part)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("PRIORA_TRUSTED_PROXIES: %q is not an address or CIDR", part)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
