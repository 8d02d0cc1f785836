package auth

import (
	"strings"
)

// Perm is a set of SMART v2 permissions on a resource type.
type Perm uint8

// The SMART v2 permissions, in their canonical "cruds" order.
const (
	Create Perm = 1 << iota
	Read
	Update
	Delete
	Search
)

const permLetters = "cruds"

// AllPerms is cruds.
const AllPerms = Create | Read | Update | Delete | Search

// String renders the permissions in cruds order ("rs", "c").
func (p Perm) String() string {
	var b strings.Builder
	for i := range len(permLetters) {
		if p&(1<<i) != 0 {
			b.WriteByte(permLetters[i])
		}
	}
	return b.String()
}

// Priora's own scopes, outside the SMART resource syntax.
const (
	// ScopeReview lets a payer client use the review API (/review) for the
	// requests of every provider tenant. Granted only to payer clients.
	ScopeReview = "priora/review"
	// ScopeAdmin lets a payer client read the audit trail (/admin/audit).
	ScopeAdmin = "priora/admin"
)

// Scope is one OAuth scope. SMART resource scopes
// ("system/Claim.c", "system/ClaimResponse.read") have a Context, a
// Resource (a type or "*") and Perms; any other scope (Priora's own, such as
// "priora/review") is opaque and matched exactly by Raw.
type Scope struct {
	Raw      string
	Context  string // system, patient or user; "" for opaque scopes
	Resource string
	Perms    Perm
}

// ParseScope reads one scope. SMART v2 permissions must be a non-empty
// subsequence of "cruds"; v1 suffixes .read (= rs), .write (= cud) and .*
// (= cruds) are accepted too. ok is false for malformed SMART scopes and for
// v2 scopes with query parameters, which Priora does not grant.
func ParseScope(s string) (Scope, bool) {
	if s == "" || len(s) > 200 || strings.ContainsAny(s, " \t\r\n?") {
		return Scope{}, false
	}
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok || (ctx != "system" && ctx != "patient" && ctx != "user") {
		if ctx == "system" || ctx == "patient" || ctx == "user" {
			return Scope{}, false
		}
		return Scope{Raw: s}, true // opaque
	}
	res, suffix, ok := strings.Cut(rest, ".")
	if !ok || !validResource(res) {
		return Scope{}, false
	}
	var p Perm
	switch suffix {
	case "read":
		p = Read | Search
	case "write":
		p = Create | Update | Delete
	case "*":
		p = AllPerms
	default:
		i := 0
		for _, ch := range []byte(suffix) {
			j := strings.IndexByte(permLetters[i:], ch)
			if j < 0 {
				return Scope{}, false // unknown or out of order
			}
			i += j + 1
			p |= 1 << (i - 1)
		}
		if p == 0 {
			return Scope{}, false
		}
	}
	return Scope{Raw: s, Context: ctx, Resource: res, Perms: p}, true
}

func validResource(s string) bool {
	if s == "*" {
		return true
	}
	if s == "" || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Scopes is a set of scopes.
type Scopes []Scope

// ParseScopes reads a space-separated scope string, dropping scopes that do
// not parse (they are never granted).
func ParseScopes(s string) Scopes {
	var out Scopes
	for _, f := range strings.Fields(s) {
		if sc, ok := ParseScope(f); ok {
			out = append(out, sc)
		}
	}
	return out
}

// String is the space-separated form.
func (ss Scopes) String() string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = s.Raw
	}
	return strings.Join(parts, " ")
}

// Allows reports whether a system scope grants perm on resource.
func (ss Scopes) Allows(resource string, perm Perm) bool {
	for _, s := range ss {
		if s.Context == "system" && (s.Resource == resource || s.Resource == "*") && s.Perms&perm == perm {
			return true
		}
	}
	return false
}

// Has reports whether the opaque scope name is present.
func (ss Scopes) Has(name string) bool {
	for _, s := range ss {
		if s.Context == "" && s.Raw == name {
			return true
		}
	}
	return false
}

// Grant mediates a request: the granted scopes are the requested ones,
// narrowed to what allowed permits (SMART App Launch 2 "scope mediation").
// A requested scope granted in full keeps its spelling; a narrowed one is
// written in v2 syntax, e.g. system/Claim.cruds against an allowance of
// system/Claim.c is granted as system/Claim.c.
func Grant(requested, allowed Scopes) Scopes {
	var out Scopes
	seen := map[string]bool{}
	add := func(s Scope) {
		if !seen[s.Raw] {
			seen[s.Raw] = true
			out = append(out, s)
		}
	}
	for _, r := range requested {
		if r.Context == "" {
			if allowed.Has(r.Raw) {
				add(r)
			}
			continue
		}
		if r.Resource == "*" {
			for _, a := range allowed {
				if a.Context != r.Context {
					continue
				}
				if p := r.Perms & a.Perms; p != 0 {
					add(v2(r.Context, a.Resource, p, r, a))
				}
			}
			continue
		}
		var p Perm
		for _, a := range allowed {
			if a.Context == r.Context && (a.Resource == r.Resource || a.Resource == "*") {
				p |= r.Perms & a.Perms
			}
		}
		if p != 0 {
			add(v2(r.Context, r.Resource, p, r))
		}
	}
	return out
}

// v2 builds a granted scope, keeping the spelling of a source scope that
// says exactly the same thing.
func v2(ctx, res string, p Perm, same ...Scope) Scope {
	for _, s := range same {
		if s.Context == ctx && s.Resource == res && s.Perms == p {
			return s
		}
	}
	return Scope{Raw: ctx + "/" + res + "." + p.String(), Context: ctx, Resource: res, Perms: p}
}
