package server

import (
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/fhir"
)

// FHIR REST conventions (FHIR R4 http.html) that hold for every route
// under /fhir: content negotiation, HEAD, 405 with Allow, the Prefer
// handling of unknown search parameters and If-Match.

// negotiate refuses, with 406, a request for a representation Priora
// cannot give: _format or Accept asking for anything but FHIR JSON, or
// an Accept fhirVersion other than R4's 4.0. (A request body in another
// format is 415: readFHIR.)
func (s *Server) negotiate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Path() == "/fhir/.well-known/smart-configuration" {
			return next(c) // SMART discovery is plain JSON, whatever is asked
		}
		if err := acceptsJSON(c.Request()); err != nil {
			return err
		}
		return next(c)
	}
}

// acceptsJSON checks _format and the Accept header: Priora answers FHIR
// R4 JSON only.
func acceptsJSON(r *http.Request) error {
	if f := r.URL.Query().Get("_format"); f != "" {
		mt, params, err := mime.ParseMediaType(f)
		switch {
		case f == "json":
		case err != nil || !isJSON(mt):
			return fhir.Errorf(fhir.NotAcceptable, "_format %q cannot be answered; Priora answers application/fhir+json", f)
		case params["fhirversion"] != "" && !isR4(params["fhirversion"]):
			return fhir.Errorf(fhir.NotAcceptable, "_format asks for FHIR version %q; Priora answers FHIR R4 (fhirVersion=4.0)", params["fhirversion"])
		}
	}
	accept := r.Header.Get("Accept")
	if strings.TrimSpace(accept) == "" {
		return nil
	}
	otherVersion := ""
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if q, ok := params["q"]; ok {
			if w, err := strconv.ParseFloat(q, 64); err == nil && w <= 0 {
				continue // q=0: not acceptable (RFC 9110 §12.4.2)
			}
		}
		if !isJSON(mt) && mt != "*/*" && mt != "application/*" {
			continue
		}
		if v := params["fhirversion"]; v != "" && !isR4(v) {
			otherVersion = v
			continue
		}
		return nil
	}
	if otherVersion != "" {
		return fhir.Errorf(fhir.NotAcceptable, "Accept asks for FHIR version %q; Priora answers FHIR R4 (fhirVersion=4.0)", otherVersion)
	}
	return fhir.Errorf(fhir.NotAcceptable, "cannot answer in %q; Priora answers application/fhir+json", accept)
}

// isR4 reports whether a fhirVersion media type parameter names R4: "4.0"
// (the form FHIR defines), or a 4.0.x release.
func isR4(v string) bool { return v == "4.0" || strings.HasPrefix(v, "4.0.") }

// restMethods are the methods a FHIR endpoint may be called with; each
// one a path does not serve is answered 405 with an Allow header.
var restMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// methodsNotAllowed registers, for every path of the group, the REST
// methods it does not serve, answering 405 with an Allow header (echo
// would answer a group path's other methods with the group's 404).
func (rg routeGroup) methodsNotAllowed() {
	for _, path := range rg.seen.paths {
		served := rg.seen.methods[path]
		allow := strings.Join(served, ", ")
		for _, m := range restMethods {
			if slices.Contains(served, m) {
				continue
			}
			rg.add(m, path, public(), func(c echo.Context) error {
				c.Response().Header().Set("Allow", allow)
				return fhir.Errorf(fhir.MethodNotAllowed, "%s is not allowed on this endpoint; it answers %s", c.Request().Method, allow)
			})
		}
	}
}

// strictParams enforces `Prefer: handling=strict` on a search: a parameter
// Priora does not know is then an error instead of being ignored (FHIR R4
// search.html §3.1.1.3.2). known are the parameters the search serves;
// _format is known everywhere.
func strictParams(c echo.Context, known ...string) error {
	if !preferStrict(c.Request().Header.Values("Prefer")) {
		return nil
	}
	var unknown []string
	for name := range c.QueryParams() {
		if name != "_format" && !slices.Contains(known, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	issues := make([]fhir.Issue, len(unknown))
	for i, n := range unknown {
		issues[i] = fhir.Issue{Severity: "error", Code: "not-supported", Expression: n,
			Diagnostics: "unknown search parameter " + n + " (Prefer: handling=strict); known: " + strings.Join(known, ", ")}
	}
	return &fhir.Error{Kind: fhir.Invalid, Message: issues[0].Diagnostics, Issues: issues}
}

// preferStrict reports whether Prefer headers ask for handling=strict.
func preferStrict(values []string) bool {
	for _, v := range values {
		for _, pref := range strings.Split(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(pref), "=")
			if strings.EqualFold(strings.TrimSpace(name), "handling") && strings.EqualFold(strings.Trim(strings.TrimSpace(val), `"`), "strict") {
				return true
			}
		}
	}
	return false
}

// ifMatch reads an If-Match header as a resource version: 0 when absent
// or "*" (any version), else the version in W/"n" or "n". A value that
// is not a version tag is an Invalid error.
func ifMatch(r *http.Request) (int, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" || v == "*" {
		return 0, nil
	}
	tag, err := strconv.Unquote(strings.TrimPrefix(v, "W/"))
	n, err2 := strconv.Atoi(tag)
	if err != nil || err2 != nil || n < 1 {
		return 0, fhir.InvalidAt("value", "", "If-Match %q is not a version tag such as W/\"3\"", v)
	}
	return n, nil
}
