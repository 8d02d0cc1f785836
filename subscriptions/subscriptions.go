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
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/internal/outbound"
	"github.com/priora/priora/internal/worker"
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
	// Outbound decides which endpoints may be used and makes the HTTP
	// client every notification goes through [the strict policy: public
	// https endpoints only].
	Outbound *outbound.Policy
	// Deliveries, when set, counts every delivery attempt (metrics).
	Deliveries DeliveryCounter
}

// DeliveryCounter is told of each notification sent: its type (handshake,
// heartbeat, event-notification), whether the endpoint accepted it, and for
// a delivered event how long after its creation.
type DeliveryCounter interface {
	Delivery(kind string, ok bool, lag time.Duration)
}

// counted reports one delivery attempt to the counter, if any.
func (s *Service) counted(kind string, err error, lag time.Duration) {
	if s.cfg.Deliveries != nil {
		s.cfg.Deliveries.Delivery(kind, err == nil, lag)
	}
}

// Options tune delivery. Zero values take the defaults in brackets.
type Options struct {
	// Workers is how many deliveries one process makes at a time [8].
	Workers int
	// TenantWorkers is how many of them may be for one tenant's
	// subscriptions [Workers/4, at least 1], so that a tenant whose
	// endpoints are slow cannot hold up the others.
	TenantWorkers int
	// PollInterval is how often an idle process looks for work [1s].
	PollInterval time.Duration
	// RetryBase and RetryCap shape the backoff after a failed delivery:
	// RetryBase·2^(n-1) after the n-th failure in a row, at most RetryCap
	// [2s, 5m]. Event deliveries are retried without limit.
	RetryBase, RetryCap time.Duration
	// HandshakeAttempts is how many failed handshakes turn a new
	// subscription's status to error [3].
	HandshakeAttempts int
	// Timeout is a notification request's timeout when the subscription
	// sets no backport-timeout [10s]; neither may exceed
	// outbound.MaxTimeout (10s).
	Timeout time.Duration
	// Lease is how long a worker holds a subscription beyond the timeout of
	// the request it is making; a crashed worker's work resumes elsewhere
	// after at most Lease + timeout [30s].
	Lease time.Duration
	// MaxPerTenant is how many subscriptions one tenant may have [20].
	MaxPerTenant int
	// MinHeartbeat is the shortest heartbeat period a subscription may ask
	// for [60s]; shorter ones are refused. Tests lower it.
	MinHeartbeat time.Duration
	// BreakerFailures failures in a row of one tenant's deliveries to one
	// endpoint origin open its circuit breaker [5]: for BreakerCooldown
	// [30s] deliveries there fail without a request, then one probe
	// decides whether it closes again.
	BreakerFailures int
	BreakerCooldown time.Duration
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.TenantWorkers <= 0 {
		o.TenantWorkers = max(1, o.Workers/4)
	}
	if o.HandshakeAttempts <= 0 {
		o.HandshakeAttempts = 3
	}
	if o.MaxPerTenant <= 0 {
		o.MaxPerTenant = 20
	}
	if o.BreakerFailures <= 0 {
		o.BreakerFailures = 5
	}
	def(&o.PollInterval, time.Second)
	def(&o.RetryBase, 2*time.Second)
	def(&o.RetryCap, 5*time.Minute)
	def(&o.Timeout, outbound.MaxTimeout)
	o.Timeout = min(o.Timeout, outbound.MaxTimeout)
	def(&o.Lease, 30*time.Second)
	def(&o.MinHeartbeat, time.Minute)
	def(&o.BreakerCooldown, 30*time.Second)
}

// Service manages subscriptions and delivers their notifications. It is
// safe for concurrent use.
type Service struct {
	cfg      Config
	opt      Options
	lim      limits
	client   *http.Client
	log      *slog.Logger
	subs     *store.Subscriptions
	fhirBase string
	owner    string
	// kick wakes the dispatch loop, wake the delivery loop.
	kick, wake chan struct{}
	// sched runs this process's deliveries; breakers guard endpoints.
	sched    *scheduler
	breakers *breakers
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
	if cfg.Outbound == nil {
		cfg.Outbound, _ = outbound.New(outbound.Config{}) // the zero Config is valid
	}
	subs, err := cfg.Store.Subscriptions(ctx)
	if err != nil {
		return nil, err
	}
	// Undelivered notifications an older Priora left have no queue entry
	// (store.Subscriptions.Due reads the queue): add them.
	if _, err := subs.BackfillNoteQueue(ctx); err != nil {
		return nil, err
	}
	return &Service{
		cfg:      cfg,
		opt:      cfg.Options,
		lim:      limits{timeout: cfg.Options.Timeout, minHeartbeat: cfg.Options.MinHeartbeat, policy: cfg.Outbound},
		client:   cfg.Outbound.Client(outbound.MaxTimeout, maxAnswer),
		log:      cfg.Log.With("component", "subscriptions"),
		subs:     subs,
		fhirBase: strings.TrimRight(cfg.BaseURL, "/") + "/fhir",
		owner:    worker.Owner(),
		kick:     make(chan struct{}, 1),
		wake:     make(chan struct{}, 1),
		sched:    newScheduler(),
		breakers: newBreakers(cfg.Options.BreakerFailures, cfg.Options.BreakerCooldown),
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
// asks for what Priora does not support (an endpoint the outbound policy
// refuses among it) or the tenant has MaxPerTenant subscriptions.
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
	if err := s.withinQuota(ctx, sub); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "subscription created", "subscription", sub.ID, "tenant", who.Tenant)
	s.Kick()
	return s.resource(ctx, sub)
}

// withinQuota keeps a tenant at MaxPerTenant subscriptions. It runs after
// the insert: the tenant's subscriptions in creation order are counted and
// a new one beyond the limit is taken back, so that concurrent creates
// cannot overshoot (each sees the same order; no transaction needed).
func (s *Service) withinQuota(ctx context.Context, sub *store.Subscription) error {
	all, err := s.subs.Find(ctx, sub.Tenant, store.SubscriptionQuery{})
	if err != nil {
		return err
	}
	for i := range all {
		if all[i].ID != sub.ID {
			continue
		}
		if i < s.opt.MaxPerTenant {
			return nil
		}
		break
	}
	if err := s.subs.Delete(context.WithoutCancel(ctx), sub.Tenant, sub.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	msg := fmt.Sprintf("an organization may have at most %d subscriptions; delete one first", s.opt.MaxPerTenant)
	return &fhir.Error{Kind: fhir.Unprocessable, Message: msg, Issues: []fhir.Issue{{Severity: "error", Code: "too-costly", Diagnostics: msg}}}
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
// Conflict when concurrent updates keep winning, PreconditionFailed when
// version is not 0 and the stored version is another (If-Match).
//
// Reads show channel header values masked (maskHeaders); a header sent
// back with the masked value keeps the value stored under its name, so a
// client can PUT what it read.
func (s *Service) Update(ctx context.Context, who Owner, id string, raw []byte, version int) (*Resource, error) {
	c, compact, err := s.check(raw)
	if err != nil {
		return nil, err
	}
	if c.id != "" && c.id != id {
		return nil, fhir.InvalidAt("invariant", "Subscription.id", "the resource id %q does not match the URL id %q", c.id, id)
	}
	sent := c.headers
	for range 5 {
		sub, err := s.get(ctx, who, id)
		if err != nil {
			return nil, err
		}
		if version != 0 && sub.Version != version {
			return nil, fhir.Errorf(fhir.PreconditionFailed, "Subscription/%s is at version %d, not %d (If-Match); read it again", id, sub.Version, version)
		}
		if c.headers, err = unmaskHeaders(sent, sub.Headers); err != nil {
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
	s.sched.cancel(id) // a delivery in flight here stops now; elsewhere within its timeout
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

// Kick wakes this process's idle loops, e.g. after a subscription
// changed; other processes notice within their poll interval.
func (s *Service) Kick() {
	for _, c := range []chan struct{}{s.kick, s.wake} {
		select {
		case c <- struct{}{}:
		default:
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
	c, err := parse(raw, s.lim)
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
