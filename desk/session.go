package desk

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"mime"
	"net"
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
				err := fhir.Errorf(fhir.Forbidden, "This form was sent from another site and was refused.")
				d.audit(r, w, s, 0, err, "form refused: cross-site")
				return err
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxUpload+64<<10)
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
				// A document upload: files stay in memory up to the cap.
				if err := r.ParseMultipartForm(maxUpload + 64<<10); err != nil {
					var tooBig *http.MaxBytesError
					if errors.As(err, &tooBig) {
						return fhir.Errorf(fhir.TooLarge, "The file is larger than %d MB; attach larger documents through the review API.", maxUpload>>20)
					}
					return fhir.Errorf(fhir.Invalid, "The form could not be read.")
				}
			} else if err := r.ParseForm(); err != nil {
				return fhir.Errorf(fhir.Invalid, "The form could not be read.")
			}
			if !equal(r.PostFormValue("csrf"), s.CSRF) {
				err := fhir.Errorf(fhir.Forbidden, "This form has expired. Reload the page and try again.")
				d.audit(r, w, s, 0, err, "form refused: CSRF token mismatch")
				return err
			}
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		err = h(sw, r, s)
		d.audit(r, w, s, sw.status, err, "")
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
func (d *Desk) audit(r *http.Request, w http.ResponseWriter, s *session, status int, err error, detail string) {
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
		Client: "reviewer:" + s.Reviewer.Username, Source: remoteAddr(r), RequestID: requestID(w), Detail: detail,
	}
	if aerr := d.cfg.Store.AddAudit(context.WithoutCancel(r.Context()), rec); aerr != nil {
		d.log.ErrorContext(r.Context(), "desk: audit record not written", "err", aerr)
	}
}

// auditSignIn records a failed or refused sign-in, or a refused sign-in
// form, in the audit trail with the request id. The username tried is
// recorded as sent (normalized, at most 64 characters): it may be anyone's
// guess, never a password.
func (d *Desk) auditSignIn(w http.ResponseWriter, r *http.Request, username string, status int, detail string) {
	now := d.cfg.Now().UTC()
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	if len(username) > 64 {
		username = username[:64]
	}
	client := ""
	if username != "" {
		client = "reviewer:" + username
	}
	rec := &store.AuditRecord{
		ID:      now.Format("20060102T150405.000000000Z") + "-desk-" + hex.EncodeToString(rnd[:]),
		Time:    now,
		Expires: now.AddDate(6, 0, 0),
		Type:    "desk", Action: "E", Method: r.Method, Route: r.URL.Path, Status: status, Outcome: "4",
		Client: client, Source: remoteAddr(r), RequestID: requestID(w), Detail: detail,
	}
	if aerr := d.cfg.Store.AddAudit(context.WithoutCancel(r.Context()), rec); aerr != nil {
		d.log.Error("desk: audit record not written", "err", aerr)
	}
}

// remoteAddr is the client's address without its port (behind a trusted
// proxy the server has already put the forwarded address there).
func remoteAddr(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
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
		d.auditSignIn(w, r, "", http.StatusForbidden, "sign-in form refused: cross-site or CSRF token mismatch")
		return fhir.Errorf(fhir.Forbidden, "This sign-in form has expired or was sent from another site. Reload the page and try again.")
	}
	username := normalizeUsername(r.PostFormValue("username"))
	password := r.PostFormValue("password")
	data := &loginPageData{Title: "Sign in", CSRF: c.Value, Username: username}
	now := d.cfg.Now()
	addr := remoteAddr(r)
	if refused, limit := d.throttle.refused(addr, username, now); refused {
		d.log.WarnContext(r.Context(), "desk sign-in refused: too many failures", "limit", limit)
		d.auditSignIn(w, r, username, http.StatusTooManyRequests, "sign-in refused: too many failures ("+limit+")")
		data.Error = "Too many failed sign-ins. Wait a few minutes, then try again."
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
		d.throttle.fail(addr, username, now)
		d.auditSignIn(w, r, username, http.StatusUnauthorized, "sign-in failed")
		attrs := []any{"account_exists", rev != nil}
		if rev != nil {
			attrs = append(attrs, "username", rev.Username)
		}
		d.log.WarnContext(r.Context(), "desk sign-in failed", attrs...)
		data.Error = "The username or password is wrong, or the account is disabled."
		d.render(w, r, http.StatusUnauthorized, "login", data)
		return nil
	}
	d.throttle.succeed(addr, username)
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

// throttle slows password guessing without letting anyone lock a reviewer
// out. It keeps three counts of failed sign-ins, each with its own backoff:
//
//   - per address and username: 5 failures in 15 minutes lock that address
//     out of that username for 1 minute, doubling with every further
//     failure up to 15 minutes;
//   - per address, across usernames: 30 failures in 15 minutes lock the
//     address out of every username for 15 minutes;
//   - per username, from any address: 10 failures in 15 minutes put the
//     username into a backoff of 5 s, doubling up to 1 minute — which holds
//     only for addresses that have themselves failed on that username.
//
// An attacker's failures thus lock out the attacker's own addresses; the
// reviewer, from an address with no failures, can always sign in. A
// distributed guesser gets one guess per new address before the
// username's backoff applies to it too. Refused attempts are not counted
// (they cannot renew a lock). Every username tried counts, existing or not,
// so that a refusal tells nothing about which accounts exist. The counts
// are per process.
type throttle struct {
	mu      sync.Mutex
	pair    *backoff // address + "|" + username
	addr    *backoff // address
	account *backoff // username
}

func newThrottle() *throttle {
	return &throttle{
		pair:    newBackoff(5, 15*time.Minute, time.Minute, 15*time.Minute),
		addr:    newBackoff(30, 15*time.Minute, 15*time.Minute, 15*time.Minute),
		account: newBackoff(10, 15*time.Minute, 5*time.Second, time.Minute),
	}
}

// refused says whether a sign-in for user from addr is refused now, and
// which limit refuses it ("address", "username" or "account").
func (t *throttle) refused(addr, user string, now time.Time) (bool, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.addr.locked(addr, now):
		return true, "address"
	case t.pair.locked(addr+"|"+user, now):
		return true, "username"
	case t.account.locked(user, now) && t.pair.failed(addr+"|"+user, now):
		return true, "account"
	}
	return false, ""
}

func (t *throttle) fail(addr, user string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pair.fail(addr+"|"+user, now)
	t.addr.fail(addr, now)
	t.account.fail(user, now)
}

// succeed clears the address's failures for the username, and the
// username's backoff.
func (t *throttle) succeed(addr, user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.pair.m, addr+"|"+user)
	delete(t.account.m, user)
}

// backoff counts failures per key: max of them within window lock the key
// for base, and every further failure before the count lapses locks it for
// twice as long as the last time, up to limit.
type backoff struct {
	max                 int
	window, base, limit time.Duration
	m                   map[string]*failures
	pruneLength         int
}

type failures struct {
	n           int
	first, last time.Time
	lockedUntil time.Time
	lock        time.Duration // the last lock's length
}

func newBackoff(max int, window, base, limit time.Duration) *backoff {
	return &backoff{max: max, window: window, base: base, limit: limit, m: map[string]*failures{}, pruneLength: 10000}
}

func (b *backoff) locked(key string, now time.Time) bool {
	f := b.m[key]
	return f != nil && now.Before(f.lockedUntil)
}

// failed says whether key has failures that still count.
func (b *backoff) failed(key string, now time.Time) bool {
	f := b.m[key]
	return f != nil && !b.lapsed(f, now)
}

// lapsed: no failure for a window, and no lock in force.
func (b *backoff) lapsed(f *failures, now time.Time) bool {
	return now.Sub(f.last) > b.window && !now.Before(f.lockedUntil)
}

func (b *backoff) fail(key string, now time.Time) {
	if len(b.m) >= b.pruneLength {
		for k, f := range b.m {
			if b.lapsed(f, now) {
				delete(b.m, k)
			}
		}
	}
	f := b.m[key]
	if f == nil || b.lapsed(f, now) {
		f = &failures{first: now}
		b.m[key] = f
	}
	f.last = now
	if f.n++; f.n < b.max {
		return
	}
	if f.lock == 0 {
		f.lock = b.base
	} else {
		f.lock = min(2*f.lock, b.limit)
	}
	f.lockedUntil = now.Add(f.lock)
	f.n = b.max - 1 // the next failure locks again, for longer
}

// requestID is the request's id, which the server's middleware has put in
// the response's X-Request-Id, for audit records.
func requestID(w http.ResponseWriter) string { return w.Header().Get("X-Request-Id") }
