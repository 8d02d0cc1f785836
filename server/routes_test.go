package server

import (
	"net/http"
	"slices"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/hooks"
)

// withoutRequirement walks echo's registered routes and lists those that
// were not registered with exactly one way in (routes.go). The not-found
// catch-alls echo adds to groups with middleware answer 404 and need none.
func withoutRequirement(s *Server) []string {
	var bad []string
	for _, r := range s.echo.Routes() {
		if r.Method == echo.RouteNotFound {
			continue
		}
		ri, ok := s.table[r.Method+" "+r.Path]
		ways := 0
		for _, set := range []bool{ri.need.public, ri.need.own != "", ri.need.allow != nil} {
			if set {
				ways++
			}
		}
		if !ok || ways != 1 {
			bad = append(bad, r.Method+" "+r.Path)
		}
	}
	slices.Sort(bad)
	return bad
}

func TestEveryRouteHasARequirement(t *testing.T) {
	s := New(Config{Hooks: &hooks.Service{}, Desk: http.NotFoundHandler()})
	if bad := withoutRequirement(s); len(bad) > 0 {
		t.Errorf("routes registered without a requirement: %v", bad)
	}
	// The walk sees every family of routes.
	for _, want := range []string{
		"GET /fhir/metadata", "POST /fhir/Claim/$submit", "DELETE /fhir/Subscription/:id", "POST /review/tasks/:id/decision",
		"GET /admin/audit", "POST /auth/token", "GET /cds-services", "POST /cds-services/:id", "GET /desk/*", "GET /healthz",
	} {
		if _, ok := s.table[want]; !ok {
			t.Errorf("%s is not registered", want)
		}
	}
	// A route registered behind routes.go's back is caught.
	s.echo.GET("/fhir/Sneaky", func(echo.Context) error { return nil })
	s.echo.Group("/review").POST("/tasks/:id/undo", func(echo.Context) error { return nil })
	if bad := withoutRequirement(s); !slices.Equal(bad, []string{"GET /fhir/Sneaky", "POST /review/tasks/:id/undo"}) {
		t.Errorf("after adding two routes directly, the walk found %v", bad)
	}
}

func TestRequirementFamilies(t *testing.T) {
	s := New(Config{Hooks: &hooks.Service{}})
	for key, want := range map[string]family{
		"POST /fhir/Claim/$submit": fhirErrors, "POST /cds-services/:id": cdsErrors, "POST /auth/token": oauthErrors,
	} {
		if got := s.table[key].family; got != want {
			t.Errorf("%s renders errors as family %d, want %d", key, got, want)
		}
	}
}
