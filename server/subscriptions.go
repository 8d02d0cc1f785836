package server

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/subscriptions"
)

// owner is the caller as the subscriptions package knows it.
func owner(c echo.Context) subscriptions.Owner {
	who := caller(c)
	return subscriptions.Owner{Tenant: who.Tenant, Client: who.Client}
}

// createSubscription is POST /fhir/Subscription: 201 with status requested.
func (s *Server) createSubscription(c echo.Context) error {
	body, err := s.readFHIR(c)
	if err != nil {
		return err
	}
	r, err := s.cfg.Subscriptions.Create(c.Request().Context(), owner(c), body)
	if err != nil {
		return err
	}
	logAttrs(c, "subscription", r.ID)
	c.Response().Header().Set(echo.HeaderLocation, s.cfg.BaseURL+"/fhir/Subscription/"+r.ID+"/_history/"+strconv.Itoa(r.Version))
	return writeSubscription(c, http.StatusCreated, r)
}

// readSubscription is GET /fhir/Subscription/:id.
func (s *Server) readSubscription(c echo.Context) error {
	r, err := s.cfg.Subscriptions.Read(c.Request().Context(), owner(c), c.Param("id"))
	if err != nil {
		return err
	}
	return writeSubscription(c, http.StatusOK, r)
}

// updateSubscription is PUT /fhir/Subscription/:id (update only; Priora
// assigns subscription ids, so a PUT does not create one). With If-Match
// the update applies only to that version (else 412).
func (s *Server) updateSubscription(c echo.Context) error {
	version, err := ifMatch(c.Request())
	if err != nil {
		return err
	}
	body, err := s.readFHIR(c)
	if err != nil {
		return err
	}
	r, err := s.cfg.Subscriptions.Update(c.Request().Context(), owner(c), c.Param("id"), body, version)
	if err != nil {
		return err
	}
	logAttrs(c, "subscription", r.ID)
	return writeSubscription(c, http.StatusOK, r)
}

// deleteSubscription is DELETE /fhir/Subscription/:id: 204.
func (s *Server) deleteSubscription(c echo.Context) error {
	if err := s.cfg.Subscriptions.Delete(c.Request().Context(), owner(c), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// searchSubscriptions is GET /fhir/Subscription?url=&status=. Other
// parameters are ignored (and left out of the self link) unless the
// client sends Prefer: handling=strict.
func (s *Server) searchSubscriptions(c echo.Context) error {
	if err := strictParams(c, "url", "status"); err != nil {
		return err
	}
	body, err := s.cfg.Subscriptions.Search(c.Request().Context(), owner(c), subscriptions.ParseQuery(c.QueryParams()))
	if err != nil {
		return err
	}
	return writeFHIR(c, http.StatusOK, body)
}

// subscriptionStatus is $status at instance level (GET or POST
// /fhir/Subscription/:id/$status) and type level (GET ?id=&status= or POST
// with a Parameters body).
func (s *Server) subscriptionStatus(c echo.Context) error {
	if err := strictParams(c, "id", "status"); err != nil {
		return err
	}
	q := c.QueryParams()
	ids, statuses := fhir.CommaList(q["id"]), fhir.CommaList(q["status"])
	if c.Request().Method == http.MethodPost && c.Request().ContentLength != 0 {
		body, err := s.readFHIR(c)
		if err != nil {
			return err
		}
		bi, bs, err := subscriptions.StatusParameters(body)
		if err != nil {
			return err
		}
		ids, statuses = append(ids, bi...), append(statuses, bs...)
	}
	id := c.Param("id")
	if id != "" && len(ids) > 0 {
		return fhir.Errorf(fhir.Invalid, "the id parameter is for Subscription/$status, not Subscription/%s/$status", id)
	}
	body, err := s.cfg.Subscriptions.Status(c.Request().Context(), owner(c), id, ids, statuses)
	if err != nil {
		return err
	}
	return writeFHIR(c, http.StatusOK, body)
}

func writeSubscription(c echo.Context, status int, r *subscriptions.Resource) error {
	c.Response().Header().Set("ETag", `W/"`+strconv.Itoa(r.Version)+`"`)
	return writeFHIR(c, status, r.Body)
}
