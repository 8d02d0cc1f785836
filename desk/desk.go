// Package desk is the reviewer desk: the web pages where utilization-
// management nurses and authorization specialists sign in, work the queue
// of pended prior-authorization requests against their CMS-0057-F
// deadlines, decide items, and read the prior-authorization metrics a payer
// must publish.
//
// The pages are server-rendered HTML (html/template) with one stylesheet
// and no script. The desk holds no decision logic: it calls pas.Service
// (Queue, Task, Decide, Metrics), so a decision made here is the same
// write as one made through the review API — a new PAS response version
// and the event that notifies subscribed EHRs.
//
// Sign-in is the desk's own: reviewer accounts (bcrypt-hashed passwords)
// and server-side sessions live in the store. The session cookie is
// HttpOnly, SameSite=Strict and, behind https, Secure with the __Host-
// prefix; every POST carries a per-session CSRF token and must come from
// the desk's own origin. No patient data goes into a URL or a log line:
// URLs carry only Priora's own request ids (PA…).
package desk

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config wires a Desk.
type Config struct {
	Store *store.Store
	PAS   *pas.Service
	// BaseURL is Priora's public origin; https makes the session cookie
	// Secure, and POSTs must come from it (or from the Host they were sent to).
	BaseURL string
	Log     *slog.Logger
	Now     func() time.Time
	// IdleTimeout ends a session unused this long (default 30 minutes);
	// MaxSession ends any session this long after sign-in (default 12 hours).
	IdleTimeout time.Duration
	MaxSession  time.Duration
	// MetricsTTL is how long computed metrics are reused (default 30 s):
	// computing them scans every authorization.
	MetricsTTL time.Duration
}

// Desk serves the reviewer desk under /desk/. It is an http.Handler and
// safe for concurrent use.
type Desk struct {
	cfg    Config
	log    *slog.Logger
	mux    *http.ServeMux
	pages  map[string]*template.Template
	static http.Handler

	secure       bool
	origin       string // BaseURL's scheme://host
	cookie       string // session cookie name
	loginCookie  string // pre-sign-in CSRF cookie name
	cookiePath   string
	throttle     *throttle
	dummyHash    []byte // compared against when the username is unknown
	metricsCache metricsCache
}

// New builds the desk and parses its templates.
func New(cfg Config) (*Desk, error) {
	if cfg.Store == nil || cfg.PAS == nil {
		return nil, errors.New("desk: a store and a PAS service are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.MaxSession <= 0 {
		cfg.MaxSession = 12 * time.Hour
	}
	if cfg.MetricsTTL <= 0 {
		cfg.MetricsTTL = 30 * time.Second
	}
	d := &Desk{cfg: cfg, log: cfg.Log.With("component", "desk"), mux: http.NewServeMux(),
		throttle: newThrottle()}
	if u, err := url.Parse(cfg.BaseURL); err == nil && u.Host != "" {
		d.origin = u.Scheme + "://" + u.Host
		d.secure = u.Scheme == "https"
	}
	// __Host- cookies must be Secure with Path=/ and no Domain: nothing on a
	// sibling domain or under another path can set or shadow them.
	d.cookie, d.loginCookie, d.cookiePath = "priora_desk", "priora_desk_login", "/desk/"
	if d.secure {
		d.cookie, d.loginCookie, d.cookiePath = "__Host-priora_desk", "__Host-priora_desk_login", "/"
	}
	var err error
	if d.dummyHash, err = bcrypt.GenerateFromPassword([]byte("no such reviewer"), bcryptCost); err != nil {
		return nil, fmt.Errorf("desk: %w", err)
	}
	if d.pages, err = parsePages(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	d.static = http.StripPrefix("/desk/static/", http.FileServer(http.FS(sub)))
	d.routes()
	return d, nil
}

// routes registers every page of the desk, in one place.
func (d *Desk) routes() {
	m := d.mux
	m.Handle("GET /desk", http.RedirectHandler("/desk/", http.StatusMovedPermanently))
	m.Handle("GET /desk/static/", d.staticFiles())
	m.Handle("GET /desk/login", d.handle(d.loginPage))
	m.Handle("POST /desk/login", d.handle(d.login))
	m.Handle("POST /desk/logout", d.authed(d.logout))
	m.Handle("GET /desk/{$}", d.authed(d.queuePage))
	m.Handle("GET /desk/tasks/{id}", d.authed(d.taskPage))
	m.Handle("POST /desk/tasks/{id}/decision", d.authed(d.decide))
	m.Handle("POST /desk/tasks/{id}/claim", d.authed(d.assign("claim")))
	m.Handle("POST /desk/tasks/{id}/release", d.authed(d.assign("release")))
	m.Handle("POST /desk/tasks/{id}/assign", d.authed(d.assign("assign")))
	m.Handle("POST /desk/tasks/{id}/reopen", d.authed(d.reopen))
	m.Handle("POST /desk/tasks/{id}/documents", d.authed(d.attach))
	m.Handle("GET /desk/tasks/{id}/attachments/{seq}/{n}", d.authed(d.attachment))
	m.Handle("GET /desk/tasks/{id}/attached/{num}/{n}", d.authed(d.attachedFile))
	m.Handle("GET /desk/metrics", d.authed(d.metricsPage))
	m.Handle("GET /desk/api/metrics", d.authed(d.metricsJSON))
	m.Handle("GET /desk/metrics/export", d.authed(d.metricsExport))
	m.Handle("/desk/", d.handle(func(http.ResponseWriter, *http.Request) error {
		return fhir.Errorf(fhir.NotFound, "There is no such page.")
	}))
}

// ServeHTTP serves the desk's pages.
func (d *Desk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer a browser sends
	// "Origin: null" on form posts, and the origin check needs the origin.
	// Desk URLs carry nothing but Priora's own ids.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	d.mux.ServeHTTP(w, r)
}

func (d *Desk) staticFiles() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		d.static.ServeHTTP(w, r)
	})
}

// handler is the shape of every page: it returns an error, and handle
// renders it as an error page.
type handler func(w http.ResponseWriter, r *http.Request) error

// handle turns a handler into an http.Handler: errors become an HTML page
// whose status follows the error's fhir.Kind. Internal errors are logged
// with the request id and shown as a generic message.
func (d *Desk) handle(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			d.renderError(w, r, err)
		}
	})
}

func (d *Desk) renderError(w http.ResponseWriter, r *http.Request, err error) {
	kind := fhir.KindOf(err)
	msg := "Something went wrong on our side. Try again; if it keeps happening, tell the Priora administrators."
	if kind == fhir.Internal {
		d.log.ErrorContext(r.Context(), "desk request failed", "route", r.Pattern, "err", err)
	} else {
		var fe *fhir.Error
		if errors.As(err, &fe) {
			msg = fe.Message
		}
	}
	page := errorPage{Title: httpTitle(kind.Status()), Message: msg}
	if s, ok := r.Context().Value(sessionKey{}).(*session); ok {
		page.Session = s
	}
	d.render(w, r, kind.Status(), "error", &page)
}

func httpTitle(status int) string {
	switch status {
	case http.StatusNotFound:
		return "Not found"
	case http.StatusForbidden:
		return "Not allowed"
	case http.StatusConflict:
		return "Already changed"
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return "Cannot do that"
	case http.StatusTooManyRequests:
		return "Too many attempts"
	}
	if status >= 500 {
		return "Something went wrong"
	}
	return http.StatusText(status)
}

// requestID is the id the server's middleware gave the request (it sets
// the response header before the desk runs).
// render executes a page template. Rendering goes to a buffer first so
// that a template error becomes a clean 500, not half a page.
func (d *Desk) render(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	t, ok := d.pages[page]
	if !ok {
		d.log.ErrorContext(r.Context(), "desk: no such template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", data); err != nil {
		d.log.ErrorContext(r.Context(), "desk: render failed", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// RunSweeper deletes expired sessions every interval until ctx ends. The
// embedded store has no TTL indexes, so expiry needs a worker.
func (d *Desk) RunSweeper(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = 5 * time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := d.cfg.Store.DeleteExpiredSessions(ctx, d.cfg.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			d.log.Warn("sweeping expired desk sessions failed", "err", err)
		case n > 0:
			d.log.Debug("expired desk sessions removed", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
