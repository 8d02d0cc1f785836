package desk

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/store"
)

// session is a signed-in reviewer, as the pages see it.
type session struct {
	id       string // hash of the cookie's token
	CSRF     string
	Reviewer *store.Reviewer
}

// DisplayName is how the desk names the signed-in reviewer.
func (s *session) DisplayName() string {
	if s.Reviewer.Name != "" {
		return s.Reviewer.Name
	}
	return s.Reviewer.Username
}

// Role is the signed-in account's role (none counts as nurse).
func (s *session) Role() string { return pas.RoleOf(s.Reviewer.Role) }

// reviewer is who decisions made in this session are recorded as.
func (s *session) reviewer() pas.Reviewer {
	r := pas.Reviewer{NPI: s.Reviewer.NPI, Name: s.Reviewer.Name, Role: pas.RoleOf(s.Reviewer.Role)}
	if r.NPI == "" && r.Name == "" {
		r.Name = s.Reviewer.Username
	}
	return r
}

type sessionKey struct{}

// authedHandler is a page that needs a signed-in reviewer.
type authedHandler func(w http.ResponseWriter, r *http.Request, s *session) error

// authed requires a live session: a GET without one is sent to sign in, a
// POST without one is refused. Every POST must also come from the desk's
// origin and carry the session's CSRF token.
func (d *Desk) authed(h authedHandler) http.Handler {
	return d.handle(func(w http.ResponseWriter, r *http.Request) error {
		s, err := d.currentSession(w, r)
		if err != nil {
			return err
		}
		if s == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/desk/login", http.StatusSeeOther)
				return nil
			}
			return fhir.Errorf(fhir.Unauthorized, "Your session has ended. Sign in again.")
		}
		r = r.WithContext(context.WithValue(r.Context(), sessionKey{}, s))
		if r.Method == http.MethodPost {
			if !d.sameOrigin(r) {
				return fhir.Errorf(fhir.Forbidden, "This form was sent from another site and was refused.")
			}
			if err := r.ParseForm(); err != nil {
				return fhir.Errorf(fhir.Invalid, "The form could not be read.")
			}
			if !equal(r.PostFormValue("csrf"), s.CSRF) {
				return fhir.Errorf(fhir.Forbidden, "This form has expired. Reload the page and try again.")
			}
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		err = h(sw, r, s)
		d.audit(r, s, sw.status, err)
		return err
	})
}

// statusWriter remembers the status a handler wrote, for the audit record.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// audit records a reviewer's access to the desk — every page of it shows
// patient data — in the audit trail the API's accesses go to (GET
// /admin/audit). Like the rest of the trail it holds no patient data: the
// path names Priora's own request ids only.
func (d *Desk) audit(r *http.Request, s *session, status int, err error) {
	if err != nil {
		status = fhir.KindOf(err).Status()
	}
	action := "R"
	if r.Method == http.MethodPost {
		action = "U"
	}
	outcome := "0"
	switch {
	case status >= 500:
		outcome = "8"
	case status >= 400:
		outcome = "4"
	}
	now := d.cfg.Now().UTC()
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	rec := &store.AuditRecord{
		ID:      now.Format("20060102T150405.000000000Z") + "-desk-" + hex.EncodeToString(rnd[:]),
		Time:    now,
		Expires: now.AddDate(6, 0, 0),
		Type:    "desk", Action: action, Method: r.Method, Route: r.URL.Path, Status: status, Outcome: outcome,
		Client: "reviewer:" + s.Reviewer.Username, Source: r.RemoteAddr,
	}
	if aerr := d.cfg.Store.AddAudit(context.WithoutCancel(r.Context()), rec); aerr != nil {
		d.log.ErrorContext(r.Context(), "desk: audit record not written", "err", aerr)
	}
}

// currentSession returns the session the request's cookie names, nil when
// there is none or it has ended. Using a session slides its expiry forward
// (written at most once a minute), never past its absolute deadline; a
// disabled reviewer's session ends.
func (d *Desk) currentSession(w http.ResponseWriter, r *http.Request) (*session, error) {
	c, err := r.Cookie(d.cookie)
	if err != nil || c.Value == "" || len(c.Value) > 128 {
		return nil, nil
	}
	ctx, now := r.Context(), d.cfg.Now()
	id := hashToken(c.Value)
	st, err := d.cfg.Store.Session(ctx, id, now)
	if errors.Is(err, store.ErrNotFound) {
		d.clearCookie(w, d.cookie)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rev, err := d.cfg.Store.Reviewer(ctx, st.Username)
	if errors.Is(err, store.ErrNotFound) || (err == nil && rev.Disabled) {
		_ = d.cfg.Store.DeleteSession(ctx, id)
		d.clearCookie(w, d.cookie)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	next := now.Add(d.cfg.IdleTimeout)
	if next.After(st.Deadline) {
		next = st.Deadline
	}
	if next.Sub(st.Expires) > time.Minute {
		if err := d.cfg.Store.ExtendSession(ctx, id, next); err != nil {
			return nil, err
		}
	}
	return &session{id: id, CSRF: st.CSRF, Reviewer: rev}, nil
}

// startSession signs a reviewer in: a fresh random token (never reusing one
// the browser had, against session fixation), stored only as its hash.
func (d *Desk) startSession(w http.ResponseWriter, r *http.Request, rev *store.Reviewer) error {
	token, csrf := newToken(), newToken()
	now := d.cfg.Now()
	s := &store.Session{ID: hashToken(token), Username: rev.Username, CSRF: csrf, Created: now,
		Expires: now.Add(d.cfg.IdleTimeout), Deadline: now.Add(d.cfg.MaxSession)}
	if err := d.cfg.Store.CreateSession(r.Context(), s); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: d.cookie, Value: token, Path: d.cookiePath, HttpOnly: true,
		Secure: d.secure, SameSite: http.SameSiteStrictMode, MaxAge: int(d.cfg.MaxSession.Seconds())})
	return nil
}

func (d *Desk) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: d.cookiePath, HttpOnly: true,
		Secure: d.secure, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// sameOrigin reports whether a POST comes from the desk's own pages. A
// browser sends Origin with every form POST; it must name this server
// (the configured base URL, or the host the request was sent to). When
// Origin is absent or "null" (a privacy setting may hide it), the
// browser's Sec-Fetch-Site must say same-origin; a client that sends
// neither header is not a browser and still needs the CSRF token.
func (d *Desk) sameOrigin(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	if site != "" && site != "same-origin" && site != "none" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return site != "" || o == ""
	}
	if d.origin != "" && o == d.origin {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && u.Host == r.Host && (u.Scheme == "https" || !d.secure)
}

// loginPageData is the sign-in form.
type loginPageData struct {
	Title    string
	Session  *session
	CSRF     string
	Username string
	Error    string
	Notice   string
}

func (d *Desk) loginPage(w http.ResponseWriter, r *http.Request) error {
	if s, err := d.currentSession(w, r); err == nil && s != nil {
		http.Redirect(w, r, "/desk/", http.StatusSeeOther)
		return nil
	}
	data := &loginPageData{Title: "Sign in", CSRF: d.loginToken(w, r)}
	if r.URL.Query().Get("signed-out") == "1" {
		data.Notice = "You have signed out."
	}
	d.render(w, r, http.StatusOK, "login", data)
	return nil
}

// loginToken is the sign-in form's CSRF token: a random value in a cookie
// that the form repeats (double submit), since there is no session yet.
func (d *Desk) loginToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(d.loginCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	t := newToken()
	http.SetCookie(w, &http.Cookie{Name: d.loginCookie, Value: t, Path: d.cookiePath, HttpOnly: true,
		Secure: d.secure, SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	return t
}

func (d *Desk) login(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		return fhir.Errorf(fhir.Invalid, "The form could not be read.")
	}
	c, err := r.Cookie(d.loginCookie)
	if !d.sameOrigin(r) || err != nil || !equal(r.PostFormValue("csrf"), c.Value) {
		d.log.InfoContext(r.Context(), "desk sign-in form refused",
			"cross_origin", !d.sameOrigin(r), "login_cookie", err == nil)
		return fhir.Errorf(fhir.Forbidden, "This sign-in form has expired or was sent from another site. Reload the page and try again.")
	}
	username := normalizeUsername(r.PostFormValue("username"))
	password := r.PostFormValue("password")
	data := &loginPageData{Title: "Sign in", CSRF: c.Value, Username: username}
	now := d.cfg.Now()
	if d.throttle.locked(username, now) {
		d.log.WarnContext(r.Context(), "desk sign-in refused: too many failures")
		data.Error = "Too many failed sign-ins for this username. Wait a few minutes, then try again."
		d.render(w, r, http.StatusTooManyRequests, "login", data)
		return nil
	}
	rev, err := d.cfg.Store.Reviewer(r.Context(), username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	hash := d.dummyHash
	if rev != nil {
		hash = []byte(rev.PasswordHash)
	}
	// The hash is compared whether or not the account exists, so that the
	// answer's timing does not tell which usernames do.
	match := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
	if rev == nil || rev.Disabled || !match {
		d.throttle.fail(username, now)
		attrs := []any{"account_exists", rev != nil}
		if rev != nil {
			attrs = append(attrs, "username", rev.Username)
		}
		d.log.WarnContext(r.Context(), "desk sign-in failed", attrs...)
		data.Error = "The username or password is wrong, or the account is disabled."
		d.render(w, r, http.StatusUnauthorized, "login", data)
		return nil
	}
	d.throttle.succeed(username)
	if err := d.startSession(w, r, rev); err != nil {
		return err
	}
	if err := d.cfg.Store.RecordReviewerLogin(r.Context(), rev.Username, now); err != nil {
		d.log.WarnContext(r.Context(), "recording a desk sign-in failed", "err", err)
	}
	d.clearCookie(w, d.loginCookie)
	d.log.InfoContext(r.Context(), "desk sign-in", "username", rev.Username)
	http.Redirect(w, r, "/desk/", http.StatusSeeOther)
	return nil
}

func (d *Desk) logout(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := d.cfg.Store.DeleteSession(r.Context(), s.id); err != nil {
		return err
	}
	d.clearCookie(w, d.cookie)
	d.log.InfoContext(r.Context(), "desk sign-out", "username", s.Reviewer.Username)
	http.Redirect(w, r, "/desk/login?signed-out=1", http.StatusSeeOther)
	return nil
}

// newToken returns 256 random bits, base64url-encoded (43 characters).
func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

// equal compares secrets in constant time; empty never matches.
func equal(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func normalizeUsername(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// throttle locks a username out after max failed sign-ins within window,
// for lockout. It counts every username tried, existing or not, so that a
// lockout tells nothing about which accounts exist. It is per process: a
// deployment of several Priora instances allows max failures per instance.
type throttle struct {
	mu              sync.Mutex
	max             int
	window, lockout time.Duration
	byUser          map[string]*failures
	pruneLength     int
}

type failures struct {
	n           int
	first       time.Time
	lockedUntil time.Time
}

func newThrottle(max int, window, lockout time.Duration) *throttle {
	return &throttle{max: max, window: window, lockout: lockout, byUser: map[string]*failures{}, pruneLength: 10000}
}

func (t *throttle) locked(user string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.byUser[user]
	return f != nil && now.Before(f.lockedUntil)
}

func (t *throttle) fail(user string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.byUser) >= t.pruneLength {
		for u, f := range t.byUser {
			if now.Sub(f.first) > t.window && !now.Before(f.lockedUntil) {
				delete(t.byUser, u)
			}
		}
	}
	f := t.byUser[user]
	if f == nil || now.Sub(f.first) > t.window {
		f = &failures{first: now}
		t.byUser[user] = f
	}
	f.n++
	if f.n >= t.max {
		f.lockedUntil = now.Add(t.lockout)
		f.n, f.first = 0, now
	}
}

func (t *throttle) succeed(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.byUser, user)
}
