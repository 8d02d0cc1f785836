// Package subscriptions implements R4 backport topic-based Subscriptions on
// the Da Vinci PAS topic: their create/read/update/delete, search and
// $status, and the delivery workers that send handshakes, heartbeats and
// event notifications carrying the full PAS Response Bundle.
//
// Events come from the pas package, which appends them to an authorization
// in the same write as the decision that causes them. The workers fan each
// event out to the matching subscriptions as notification documents with
// deterministic IDs (so a re-scan after a crash stores nothing twice), then
// deliver them in order per subscription under a lease in the database, so
// that several Priora processes on one store deliver each event once and a
// restart resumes whatever was left undelivered. Delivery is at least once:
// a notification whose delivery was cut off by a crash is sent again.
//
// The package knows nothing of HTTP routing; the server package calls it
// with request bodies and renders its answers and *fhir.Error values.
package subscriptions

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

// Config wires a Service.
type Config struct {
	Store  *store.Store
	Parser *fhir.Parser
	// BaseURL is Priora's public origin; FHIR lives under BaseURL/fhir.
	// Notifications reference subscriptions by absolute URL under it.
	BaseURL string
	Now     func() time.Time
	Log     *slog.Logger
	Options Options
}

// Options tune delivery. Zero values take the defaults in brackets.
type Options struct {
	// Workers is the number of concurrent delivery loops per process [2].
	Workers int
	// PollInterval is how often idle loops look for work [1s].
	PollInterval time.Duration
	// RetryBase and RetryCap shape the backoff after a failed delivery:
	// RetryBase·2^(n-1) after the n-th failure in a row, at most RetryCap
	// [2s, 5m]. Event deliveries are retried without limit.
	RetryBase, RetryCap time.Duration
	// HandshakeAttempts is how many failed handshakes turn a new
	// subscription's status to error [3].
	HandshakeAttempts int
	// Timeout is a notification request's timeout when the subscription
	// sets no backport-timeout [10s]; a subscription may ask for up to 120s.
	Timeout time.Duration
	// Lease is how long a worker holds a subscription beyond the timeout of
	// the request it is making; a crashed worker's work resumes elsewhere
	// after at most Lease + timeout [30s].
	Lease time.Duration
	// HTTPClient sends notifications [a client that does not follow redirects].
	HTTPClient *http.Client
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.HandshakeAttempts <= 0 {
		o.HandshakeAttempts = 3
	}
	def(&o.PollInterval, time.Second)
	def(&o.RetryBase, 2*time.Second)
	def(&o.RetryCap, 5*time.Minute)
	def(&o.Timeout, 10*time.Second)
	def(&o.Lease, 30*time.Second)
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
}

// Service manages subscriptions and delivers their notifications. It is
// safe for concurrent use.
type Service struct {
	cfg      Config
	opt      Options
	log      *slog.Logger
	subs     *store.Subscriptions
	fhirBase string
	owner    string
	kick     chan struct{}
	// since is where the dispatcher's next scan for events starts; only
	// the dispatch loop touches it.
	since time.Time
}

// New returns a Service; its workers start with Run.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.Options.defaults()
	subs, err := cfg.Store.Subscriptions(ctx)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &Service{
		cfg:      cfg,
		opt:      cfg.Options,
		log:      cfg.Log.With("component", "subscriptions"),
		subs:     subs,
		fhirBase: strings.TrimRight(cfg.BaseURL, "/") + "/fhir",
		owner:    fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:])),
		kick:     make(chan struct{}, cfg.Options.Workers+1),
	}, nil
}

// Owner is who makes a request: the tenant (the client's organization) and
// the client itself. Subscriptions belong to the tenant that created them.
type Owner struct {
	Tenant string
	Client string
}

// Resource is a Subscription as FHIR JSON with its id and version.
type Resource struct {
	ID      string
	Version int
	Body    []byte
}

// Create stores a new Subscription with status requested and returns it;
// a worker then sends the handshake and sets it active (or error). Errors:
// Invalid when raw is not a valid R4 Subscription, Unprocessable when it
// asks for what Priora does not support.
func (s *Service) Create(ctx context.Context, who Owner, raw []byte) (*Resource, error) {
	c, compact, err := s.check(raw)
	if err != nil {
		return nil, err
	}
	now := s.now()
	sub := &store.Subscription{
		ID: uuid.NewString(), Tenant: who.Tenant, Client: who.Client, Created: now, Updated: now, Resource: compact,
	}
	c.apply(sub)
	if err := s.subs.Create(ctx, sub); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "subscription created", "subscription", sub.ID, "tenant", who.Tenant)
	s.Kick()
	return s.resource(ctx, sub)
}

// Read returns a tenant's Subscription. Errors: NotFound.
func (s *Service) Read(ctx context.Context, who Owner, id string) (*Resource, error) {
	sub, err := s.get(ctx, who, id)
	if err != nil {
		return nil, err
	}
	return s.resource(ctx, sub)
}

// Update replaces a tenant's Subscription. A changed endpoint, payload or
// header set, or a subscription that is off or never completed its
// handshake, goes back to requested and is handshaken again; status off
// stops delivery. Event counters and undelivered events are kept. Errors:
// NotFound, Invalid (also for a body id other than id), Unprocessable,
// Conflict when concurrent updates keep winning.
func (s *Service) Update(ctx context.Context, who Owner, id string, raw []byte) (*Resource, error) {
	c, compact, err := s.check(raw)
	if err != nil {
		return nil, err
	}
	if c.id != "" && c.id != id {
		return nil, fhir.InvalidAt("invariant", "Subscription.id", "the resource id %q does not match the URL id %q", c.id, id)
	}
	for range 5 {
		sub, err := s.get(ctx, who, id)
		if err != nil {
			return nil, err
		}
		before, _, err := s.state(ctx, sub)
		if err != nil {
			return nil, err
		}
		changed := sub.Endpoint != c.endpoint || sub.Payload != c.payload || !slices.Equal(sub.Headers, c.headers)
		c.apply(sub)
		sub.Resource, sub.Updated = compact, s.now()
		sub.Off = c.status == statusOff
		if !sub.Off && (changed || before == statusOff || before == statusError) {
			sub.HandshakeVersion = sub.Version + 1 // Update asks for it
		}
		err = s.subs.Update(ctx, sub)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.Kick()
		return s.resource(ctx, sub)
	}
	return nil, fhir.Errorf(fhir.Conflict, "Subscription/%s is being changed concurrently; try again", id)
}

// Delete removes a tenant's Subscription, its delivery state and its
// notifications. Errors:
// NotFound.
func (s *Service) Delete(ctx context.Context, who Owner, id string) error {
	if err := s.subs.Delete(ctx, who.Tenant, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound(id)
		}
		return err
	}
	s.log.InfoContext(ctx, "subscription deleted", "subscription", id, "tenant", who.Tenant)
	return nil
}

// Query selects subscriptions by the search parameters url (the channel
// endpoint) and status; each holds alternatives (a comma list).
type Query struct {
	URLs     []string
	Statuses []string
}

// ParseQuery reads url and status from search parameters; other
// parameters are ignored, as FHIR's lenient search handling allows.
func ParseQuery(v url.Values) Query {
	return Query{URLs: fhir.CommaList(v["url"]), Statuses: fhir.CommaList(v["status"])}
}

// Search returns a searchset Bundle of the tenant's matching Subscriptions.
func (s *Service) Search(ctx context.Context, who Owner, q Query) ([]byte, error) {
	subs, states, err := s.find(ctx, who, store.SubscriptionQuery{Endpoints: q.URLs}, q.Statuses)
	if err != nil {
		return nil, err
	}
	entries := make([]fhir.Entry, 0, len(subs))
	for i := range subs {
		body, err := render(&subs[i], states[i].status, states[i].err)
		if err != nil {
			return nil, err
		}
		entries = append(entries, fhir.Entry{FullURL: s.subscriptionURL(subs[i].ID), Resource: body, Search: searchMatch})
	}
	v := url.Values{}
	if len(q.URLs) > 0 {
		v.Set("url", strings.Join(q.URLs, ","))
	}
	if len(q.Statuses) > 0 {
		v.Set("status", strings.Join(q.Statuses, ","))
	}
	self := s.fhirBase + "/Subscription"
	if len(v) > 0 {
		self += "?" + v.Encode()
	}
	return s.searchset(self, entries), nil
}

// Status is $status: a searchset Bundle with a SubscriptionStatus
// (type query-status) per subscription. With id set it is the instance
// operation (NotFound when the tenant has no such subscription); otherwise
// ids and statuses select among the tenant's subscriptions.
func (s *Service) Status(ctx context.Context, who Owner, id string, ids, statuses []string) ([]byte, error) {
	self := s.fhirBase + "/Subscription/$status"
	if id != "" {
		if _, err := s.get(ctx, who, id); err != nil {
			return nil, err
		}
		ids, statuses = []string{id}, nil
		self = s.subscriptionURL(id) + "/$status"
	}
	subs, states, err := s.find(ctx, who, store.SubscriptionQuery{IDs: ids}, statuses)
	if err != nil {
		return nil, err
	}
	entries := make([]fhir.Entry, 0, len(subs))
	for i := range subs {
		last, err := s.subs.LastSeq(ctx, subs[i].ID)
		if err != nil {
			return nil, err
		}
		st := s.status(&subs[i], typeQueryStatus, states[i].status, last, nil)
		if states[i].err != "" {
			st.Parameter = append(st.Parameter, parameter{Name: "error", ValueCodeableConcept: &codeableConcept{states[i].err}})
		}
		entries = append(entries, fhir.Entry{FullURL: "urn:uuid:" + st.ID, Resource: mustJSON(st), Search: searchMatch})
	}
	return s.searchset(self, entries), nil
}

// StatusParameters reads the id and status parameters of a $status
// Parameters body (POST); an empty body has none.
func StatusParameters(body []byte) (ids, statuses []string, err error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil, nil
	}
	var p struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name        string `json:"name"`
			ValueID     string `json:"valueId"`
			ValueString string `json:"valueString"`
			ValueCode   string `json:"valueCode"`
		} `json:"parameter"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.ResourceType != "Parameters" {
		return nil, nil, fhir.InvalidAt("structure", "Parameters", "the $status body must be a Parameters resource")
	}
	for _, q := range p.Parameter {
		v := q.ValueID + q.ValueString + q.ValueCode
		switch q.Name {
		case "id":
			ids = append(ids, fhir.CommaList([]string{v})...)
		case "status":
			statuses = append(statuses, fhir.CommaList([]string{v})...)
		}
	}
	return ids, statuses, nil
}

// Kick wakes idle workers of this process, e.g. after a subscription
// changed; other processes notice within their poll interval.
func (s *Service) Kick() {
	for range cap(s.kick) {
		select {
		case s.kick <- struct{}{}:
		default:
			return
		}
	}
}

// check validates raw as a Subscription and returns what it asks for and
// its compact JSON for storage.
func (s *Service) check(raw []byte) (*channel, string, error) {
	rt, err := fhir.ResourceType(raw)
	if err != nil {
		return nil, "", err
	}
	if rt != "Subscription" {
		return nil, "", fhir.InvalidAt("structure", "", "expected a Subscription, got %s", rt)
	}
	if err := s.cfg.Parser.Check(raw); err != nil {
		return nil, "", err
	}
	c, err := parse(raw, s.opt.Timeout)
	if err != nil {
		return nil, "", err
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, "", fhir.InvalidAt("structure", "", "invalid JSON")
	}
	return c, b.String(), nil
}

// apply copies the checked configuration onto a stored subscription.
func (c *channel) apply(sub *store.Subscription) {
	sub.Endpoint, sub.Payload, sub.Headers, sub.Filters = c.endpoint, c.payload, c.headers, c.filters
	sub.Heartbeat, sub.Timeout = c.heartbeat, c.timeout
}

func (s *Service) get(ctx context.Context, who Owner, id string) (*store.Subscription, error) {
	if who.Tenant == "" {
		return nil, notFound(id) // "" would mean any tenant to the store
	}
	sub, err := s.subs.Get(ctx, who.Tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound(id)
	}
	return sub, err
}

func notFound(id string) error {
	return fhir.Errorf(fhir.NotFound, "Subscription/%s is not known", id)
}

func (s *Service) resource(ctx context.Context, sub *store.Subscription) (*Resource, error) {
	status, errText, err := s.state(ctx, sub)
	if err != nil {
		return nil, err
	}
	body, err := render(sub, status, errText)
	if err != nil {
		return nil, err
	}
	return &Resource{ID: sub.ID, Version: sub.Version, Body: body}, nil
}

// Subscription statuses (R4 Subscription.status).
const (
	statusRequested = "requested"
	statusActive    = "active"
	statusError     = "error"
	statusOff       = "off"
)

// stateOf is a subscription's status as its owner sees it, from its
// configuration and its channel's delivery state.
func stateOf(sub *store.Subscription, ch store.Channel) (status, errText string) {
	switch {
	case sub.Off:
		return statusOff, ""
	case ch.Handshaken >= sub.HandshakeVersion && ch.Attempts > 0:
		return statusError, ch.Error
	case ch.Handshaken >= sub.HandshakeVersion:
		return statusActive, ""
	case ch.HandshakeFailed >= sub.HandshakeVersion:
		return statusError, ch.Error
	}
	return statusRequested, ""
}

func (s *Service) state(ctx context.Context, sub *store.Subscription) (status, errText string, err error) {
	chs, err := s.subs.Channels(ctx, []string{sub.ID})
	if err != nil {
		return "", "", err
	}
	status, errText = stateOf(sub, chs[sub.ID])
	return status, errText, nil
}

type subState struct{ status, err string }

// find lists a tenant's subscriptions with their states, keeping those
// whose status is among statuses (all when empty).
func (s *Service) find(ctx context.Context, who Owner, q store.SubscriptionQuery, statuses []string) ([]store.Subscription, []subState, error) {
	subs, err := s.subs.Find(ctx, who.Tenant, q)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, len(subs))
	for i := range subs {
		ids[i] = subs[i].ID
	}
	chs, err := s.subs.Channels(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	var keep []store.Subscription
	var states []subState
	for i := range subs {
		st, msg := stateOf(&subs[i], chs[subs[i].ID])
		if len(statuses) == 0 || slices.Contains(statuses, st) {
			keep = append(keep, subs[i])
			states = append(states, subState{st, msg})
		}
	}
	return keep, states, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Millisecond) }
