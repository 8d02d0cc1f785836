package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/priora/priora/auth"
)

// Security configures authentication, TLS, rate limits and the audit
// trail. The zero value is secure: authentication on, no rate limit.
type Security struct {
	// InsecureDev turns authentication off. It is refused unless Priora
	// listens on a loopback address, and logged loudly.
	InsecureDev bool
	// ClientsFile is a YAML file of clients registered (or replaced) at
	// start (auth.LoadClients).
	ClientsFile string
	// TLSCert and TLSKey are PEM files; set, Priora serves HTTPS only
	// (TLS 1.2 or later).
	TLSCert, TLSKey string
	// RateLimit is requests per second per client (per address before
	// authentication), RateBurst the bucket size; 0 is no limit.
	RateLimit float64
	RateBurst int
	// AuditRetention is how long audit records are kept (default 6 years).
	AuditRetention time.Duration
	// JWKSClient fetches client JWK Sets (default: 5 s timeout).
	JWKSClient *http.Client
	// OutboundAllow lists the targets Subscription notifications and CRD's
	// EHR queries may reach although their addresses are loopback,
	// private or otherwise special-purpose, and may reach over plain http:
	// CIDR prefixes, addresses and host:port (PRIORA_OUTBOUND_ALLOW; see
	// internal/outbound).
	OutboundAllow []string
}

// startAuth builds the auth service (creating Priora's first signing key
// when there is none), the security indexes, and registers the clients
// file's clients.
func (a *App) startAuth(ctx context.Context) error {
	sec := a.Config.Security
	if sec.InsecureDev {
		a.Log.Warn("!!! PRIORA_INSECURE_DEV is on: AUTHENTICATION IS OFF; every caller is the default tenant. Never use this outside development. !!!")
	}
	if err := a.Store.EnsureAuthIndexes(ctx); err != nil {
		return err
	}
	svc, err := auth.New(ctx, auth.Config{
		Store:      a.Store,
		BaseURL:    a.Config.BaseURL,
		HTTPClient: sec.JWKSClient,
		Now:        a.Config.Now,
		Log:        a.Log,
	})
	if err != nil {
		return err
	}
	a.Auth = svc
	return a.registerClients(ctx)
}

// registerClients registers (or replaces) every client of the clients
// file, if there is one. The whole file is read and checked first, so an
// invalid file registers nothing.
func (a *App) registerClients(ctx context.Context) error {
	file := a.Config.Security.ClientsFile
	if file == "" {
		return nil
	}
	clients, err := auth.LoadClients(file)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range clients {
		if c.Webhook == "" {
			continue
		}
		if err := a.outbound.CheckURL(c.Webhook); err != nil {
			errs = append(errs, fmt.Errorf("%s: client %q: webhook %q: %w", file, c.ID, c.Webhook, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	now := a.Config.Now()
	for i := range clients {
		c := &clients[i]
		c.Created, c.Updated = now, now
		if old, err := a.Store.Client(ctx, c.ID); err == nil {
			c.Created = old.Created
		}
		if err := a.Store.PutClient(ctx, c); err != nil {
			return err
		}
	}
	a.Log.Info("clients registered from file", "file", file, "clients", len(clients))
	return nil
}

// ReloadClients re-reads the clients file (SIGHUP): changed clients take
// effect on their next request (every access token is re-checked against
// the registration), new ones can get tokens. A client removed from the
// file stays registered: disable it with priora clients disable. An
// invalid file changes nothing and is logged.
func (a *App) ReloadClients(ctx context.Context) error {
	if err := a.registerClients(ctx); err != nil {
		a.Log.Error("clients: reload refused; the registered clients stay as they are", "file", a.Config.Security.ClientsFile, "err", err)
		return err
	}
	return nil
}

// runSweeper deletes expired JWT IDs every interval and expired audit
// records every hour, and reloads Priora's signing keys (a rotation by
// `priora keys rotate` takes effect here), until ctx ends.
func (a *App) runSweeper(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var lastAudit time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := a.Config.Now()
		audit := now.Sub(lastAudit) >= time.Hour
		if audit {
			lastAudit = now
		}
		if _, err := a.Store.SweepExpired(ctx, now, audit); err != nil && ctx.Err() == nil {
			a.Log.Warn("sweep of expired jtis and audit records failed", "err", err)
		}
		if err := a.Auth.Sweep(ctx); err != nil && ctx.Err() == nil {
			a.Log.Warn("signing key refresh failed", "err", err)
		}
	}
}

// checkListener refuses to serve without authentication anywhere but on
// loopback.
func (a *App) checkListener(ln net.Listener) error {
	if !a.Config.Security.InsecureDev {
		return nil
	}
	tcp, ok := ln.Addr().(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		return fmt.Errorf("PRIORA_INSECURE_DEV is refused: %s is not a loopback address", ln.Addr())
	}
	return nil
}

// tlsConfig is TLS 1.2 or later with the configured certificate, or nil
// when none is configured.
func (a *App) tlsConfig() (*tls.Config, error) {
	sec := a.Config.Security
	if sec.TLSCert == "" && sec.TLSKey == "" {
		return nil, nil
	}
	if sec.TLSCert == "" || sec.TLSKey == "" {
		return nil, errors.New("TLS needs both a certificate and a key")
	}
	cert, err := tls.LoadX509KeyPair(sec.TLSCert, sec.TLSKey)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

// serve runs hs on ln, with TLS when tc is not nil.
func (a *App) serve(hs *http.Server, ln net.Listener, tc *tls.Config) error {
	if tc == nil {
		return hs.Serve(ln)
	}
	hs.TLSConfig = tc
	return hs.ServeTLS(ln, "", "")
}
