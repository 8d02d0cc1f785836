package server

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/fhir"
)

// requirement is what a route asks of its caller. Every route declares one
// where it is registered (routes.go); authenticate enforces it. Exactly one
// way in is set:
//
//   - public(): no credentials;
//   - ownAuth(how): the route (or its group's middleware) authenticates by
//     its own means, such as the CDS Hooks JWT or the desk's session;
//   - scope(name), perm(resource, p), anyOf(...): an access token whose
//     scopes allow it.
//
// Further conditions on the caller (its principal kind, a role) are one more
// field here, set by a method such as scope(x).only(kind), and checked in
// check after the scopes.
type requirement struct {
	public bool
	// own names the route's own authentication.
	own string
	// allow decides whether granted scopes allow the route; what says what
	// it needs, for messages and docs.
	allow func(auth.Scopes) bool
	what  string
	// kind, when set, is the principal kind (auth.KindProvider,
	// auth.KindPayer) the caller must be.
	kind string
}

// only narrows a requirement to callers of one principal kind: $submit is
// a provider's, the review API and the audit trail the payer's.
func (r requirement) only(kind string) requirement {
	r.kind = kind
	return r
}

// public is a route anyone may call.
func public() requirement { return requirement{public: true} }

// ownAuth is a route that authenticates its callers itself; how names the
// means, such as "CDS Hooks JWT".
func ownAuth(how string) requirement { return requirement{own: how} }

// scope is a route that needs one of Priora's own scopes, such as
// priora/review.
func scope(name string) requirement {
	return requirement{allow: func(s auth.Scopes) bool { return s.Has(name) }, what: name}
}

// perm is a route that needs a SMART permission on a resource type.
func perm(resource string, p auth.Perm) requirement {
	return requirement{allow: func(s auth.Scopes) bool { return s.Allows(resource, p) }, what: resource + "." + p.String()}
}

// anyOf needs any one of the scope requirements rs.
func anyOf(rs ...requirement) requirement {
	what := make([]string, len(rs))
	for i, r := range rs {
		what[i] = r.what
	}
	return requirement{
		allow: func(s auth.Scopes) bool {
			for _, r := range rs {
				if r.allow != nil && r.allow(s) {
					return true
				}
			}
			return false
		},
		what: strings.Join(what, " or "),
	}
}

// check decides whether a verified access token may call the route: nil,
// or a Forbidden error with Code insufficient_scope. A route without a
// scope requirement is closed to tokens.
func (r requirement) check(c echo.Context, acc *auth.Access) error {
	if r.allow == nil || !r.allow(acc.Scopes) {
		return fhir.CodedErrorf(fhir.Forbidden, "insufficient_scope", "the access token's scopes do not allow %s %s", c.Request().Method, c.Path())
	}
	if r.kind != "" && acc.Kind != r.kind {
		return fhir.Errorf(fhir.Forbidden, "%s %s is for %s clients only; client %s is a %s client", c.Request().Method, c.Path(), r.kind, acc.Client.ID, acc.Kind)
	}
	return nil
}

// family is the wire format a route's errors are rendered in.
type family int

const (
	fhirErrors  family = iota // FHIR OperationOutcome
	cdsErrors                 // CDS Hooks {"error": "..."}
	oauthErrors               // OAuth 2.0 {"error", "error_description"} (RFC 6749 §5.2)
)

// routeInfo is what Priora knows of a registered route.
type routeInfo struct {
	need   requirement
	family family
}

// routeAdder is an *echo.Echo or an *echo.Group.
type routeAdder interface {
	Add(method, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route
}

// routeGroup registers routes with their requirement and error family.
type routeGroup struct {
	s      *Server
	g      routeAdder
	family family
	seen   *pathMethods
}

// pathMethods are the methods registered per path of a group, paths in
// registration order.
type pathMethods struct {
	paths   []string
	methods map[string][]string
}

func (s *Server) group(g routeAdder, f family) routeGroup {
	return routeGroup{s: s, g: g, family: f, seen: &pathMethods{methods: map[string][]string{}}}
}

// add registers method path with what it requires. A GET route answers
// HEAD as well (FHIR R4 http.html: HEAD is GET without a body; net/http
// drops the body).
func (rg routeGroup) add(method, path string, need requirement, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
	r := rg.g.Add(method, path, h, m...)
	rg.s.table[r.Method+" "+r.Path] = routeInfo{need: need, family: rg.family}
	if _, ok := rg.seen.methods[path]; !ok {
		rg.seen.paths = append(rg.seen.paths, path)
	}
	rg.seen.methods[path] = append(rg.seen.methods[path], method)
	if method == http.MethodGet {
		rg.add(http.MethodHead, path, need, h, m...)
	}
}

// any registers path for every method echo routes.
func (rg routeGroup) any(path string, need requirement, h echo.HandlerFunc) {
	for _, m := range []string{
		http.MethodConnect, http.MethodDelete, http.MethodGet, http.MethodOptions, // GET adds HEAD
		http.MethodPatch, http.MethodPost, echo.PROPFIND, http.MethodPut, http.MethodTrace, echo.REPORT,
	} {
		rg.add(m, path, need, h)
	}
}

// route is the matched route's registration; ok is false for requests no
// route was registered for (echo's not-found and method-not-allowed
// answers).
func (s *Server) route(c echo.Context) (routeInfo, bool) {
	ri, ok := s.table[c.Request().Method+" "+c.Path()]
	return ri, ok
}
