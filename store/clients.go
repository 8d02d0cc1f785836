package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The security collections. Every hot lookup is keyed by _id: the embedded
// engine (FerretDB v1 on SQLite) pushes down only {_id: <string>} filters,
// and it has no TTL indexes, so expired documents are removed by
// SweepExpired, which the application runs periodically.
const (
	collClients     = "clients"
	collJTIs        = "jtis"
	collSigningKeys = "signing_keys"
	collAudit       = "audit"
	currentKeyID    = "current"
)

// Client is a registered system. Kind says which side it is on: a
// provider system (an EHR or its clearinghouse, obtaining SMART Backend
// Services tokens or calling CDS Hooks with its JWT iss as the client ID),
// whose Org is its tenant — everything it submits belongs to Org and it sees
// nothing of any other Org; or a payer system, which reviews the requests of
// every provider tenant and never submits. Kind "" (clients stored before
// kinds existed) is a provider.
type Client struct {
	ID   string `bson:"_id" json:"id" yaml:"id"`
	Org  string `bson:"org" json:"org" yaml:"org"`
	Kind string `bson:"kind,omitempty" json:"kind,omitempty" yaml:"kind,omitempty"`
	// NPI and SenderID (X12 ISA06) describe the organization; they are
	// recorded for matching and audit.
	NPI      string `bson:"npi,omitempty" json:"npi,omitempty" yaml:"npi,omitempty"`
	SenderID string `bson:"senderId,omitempty" json:"senderId,omitempty" yaml:"senderId,omitempty"`
	// JWKS is the registered JWK Set (public keys only, JSON text); JWKSURL
	// is where the client publishes it. Exactly one is set.
	JWKS    string `bson:"jwks,omitempty" json:"jwks,omitempty" yaml:"-"`
	JWKSURL string `bson:"jwksUrl,omitempty" json:"jwksUrl,omitempty" yaml:"jwksUrl,omitempty"`
	// JKUAllow lists the jku URLs honoured in this client's JWT headers.
	JKUAllow []string `bson:"jkuAllow,omitempty" json:"jkuAllow,omitempty" yaml:"jkuAllow,omitempty"`
	// Scopes are the scopes the client may be granted.
	Scopes   []string `bson:"scopes" json:"scopes" yaml:"scopes"`
	Disabled bool     `bson:"disabled" json:"disabled" yaml:"disabled,omitempty"`
	// Test marks a test client (a conformance kit, a vendor's sandbox):
	// everything it submits is test data.
	Test bool `bson:"test,omitempty" json:"test,omitempty" yaml:"test,omitempty"`
	// Webhook is where a payer client receives UM events (umevents),
	// signed with WebhookSecret (HMAC-SHA256), which is never listed.
	Webhook       string    `bson:"webhook,omitempty" json:"webhook,omitempty" yaml:"webhook,omitempty"`
	WebhookSecret string    `bson:"webhookSecret,omitempty" json:"-" yaml:"-"`
	Created       time.Time `bson:"created" json:"created" yaml:"-"`
	Updated       time.Time `bson:"updated" json:"updated" yaml:"-"`
}

// AddClient registers a new client; ErrDuplicate when the ID is taken.
func (s *Store) AddClient(ctx context.Context, c *Client) error {
	if _, err := s.db.Collection(collClients).InsertOne(ctx, c); err != nil {
		if isDuplicate(err) {
			return ErrDuplicate
		}
		return fmt.Errorf("store: add client: %w", err)
	}
	return nil
}

// PutClient creates or replaces a client (keeping its creation time).
func (s *Store) PutClient(ctx context.Context, c *Client) error {
	if old, err := s.Client(ctx, c.ID); err == nil {
		c.Created = old.Created
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	_, err := s.db.Collection(collClients).ReplaceOne(ctx, bson.D{{Key: "_id", Value: c.ID}}, c, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("store: put client: %w", err)
	}
	return nil
}

// Client loads a client by ID; ErrNotFound when there is none.
func (s *Store) Client(ctx context.Context, id string) (*Client, error) {
	return byID[Client](ctx, s.db.Collection(collClients), id, "client")
}

// Clients lists every registered client, by ID.
func (s *Store) Clients(ctx context.Context) ([]Client, error) {
	cur, err := s.db.Collection(collClients).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("store: clients: %w", err)
	}
	var out []Client
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: clients: %w", err)
	}
	return out, nil
}

// SetClientDisabled turns a client off (or on again); ErrNotFound when
// there is no such client.
func (s *Store) SetClientDisabled(ctx context.Context, id string, disabled bool, now time.Time) error {
	res, err := s.db.Collection(collClients).UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "disabled", Value: disabled}, {Key: "updated", Value: now}}}})
	if err != nil {
		return fmt.Errorf("store: disable client: %w", err)
	}
	if res.MatchedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// UseJTI records a JWT ID until it expires. ErrDuplicate means it was seen
// before: a replay. key should name the issuer too (iss + "|" + jti).
func (s *Store) UseJTI(ctx context.Context, key string, expires time.Time) error {
	err := s.insert(ctx, s.db.Collection(collJTIs), bson.D{{Key: "_id", Value: key}, {Key: "expires", Value: expires}})
	if isDuplicate(err) {
		return ErrDuplicate
	}
	if err != nil {
		return fmt.Errorf("store: use jti: %w", err)
	}
	return nil
}

// SigningKey is one of Priora's own token-signing keys. Retired keys stay
// (and stay published) until tokens they signed have expired.
type SigningKey struct {
	KID string `bson:"_id"`
	Alg string `bson:"alg"`
	// Private is the private JWK, JSON text. It is stored as is: protect the
	// database as you would a key file.
	Private string     `bson:"private"`
	Created time.Time  `bson:"created"`
	Retired *time.Time `bson:"retired,omitempty"`
}

// SigningKeys lists Priora's signing keys and the current key's ID ("" when
// none is current yet).
func (s *Store) SigningKeys(ctx context.Context) ([]SigningKey, string, error) {
	coll := s.db.Collection(collSigningKeys)
	var cur struct {
		KID string `bson:"kid"`
	}
	err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: currentKeyID}}).Decode(&cur)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, "", fmt.Errorf("store: current signing key: %w", err)
	}
	c, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "created", Value: 1}}))
	if err != nil {
		return nil, "", fmt.Errorf("store: signing keys: %w", err)
	}
	var raw []bson.Raw
	if err := c.All(ctx, &raw); err != nil {
		return nil, "", fmt.Errorf("store: signing keys: %w", err)
	}
	var keys []SigningKey
	for _, r := range raw {
		if id, _ := r.Lookup("_id").StringValueOK(); id == currentKeyID {
			continue
		}
		var k SigningKey
		if err := bson.Unmarshal(r, &k); err != nil {
			return nil, "", fmt.Errorf("store: signing key: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, cur.KID, nil
}

// AddSigningKey stores a new key and, when makeCurrent, makes it the one
// new tokens are signed with; the previous current key is retired at now.
// When makeCurrent is set and another key became current since
// previousKID was read, ErrConflict is returned and nothing changes the
// current key (the new key stays stored, unused).
func (s *Store) AddSigningKey(ctx context.Context, k *SigningKey, previousKID string, now time.Time) error {
	coll := s.db.Collection(collSigningKeys)
	if _, err := coll.InsertOne(ctx, k); err != nil {
		if isDuplicate(err) {
			return ErrDuplicate
		}
		return fmt.Errorf("store: add signing key: %w", err)
	}
	if previousKID == "" {
		_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: currentKeyID}, {Key: "kid", Value: k.KID}})
		if isDuplicate(err) {
			return ErrConflict
		}
		if err != nil {
			return fmt.Errorf("store: current signing key: %w", err)
		}
		return nil
	}
	res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: currentKeyID}, {Key: "kid", Value: previousKID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "kid", Value: k.KID}}}})
	if err != nil {
		return fmt.Errorf("store: current signing key: %w", err)
	}
	if res.MatchedCount == 0 {
		return ErrConflict
	}
	_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: previousKID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "retired", Value: now}}}})
	if err != nil {
		return fmt.Errorf("store: retire signing key: %w", err)
	}
	return nil
}

// DeleteSigningKey removes a retired key.
func (s *Store) DeleteSigningKey(ctx context.Context, kid string) error {
	if kid == currentKeyID {
		return ErrNotFound
	}
	_, err := s.db.Collection(collSigningKeys).DeleteOne(ctx, bson.D{{Key: "_id", Value: kid}})
	if err != nil {
		return fmt.Errorf("store: delete signing key: %w", err)
	}
	return nil
}

// AuditRecord is one access to Priora's data, shaped after FHIR AuditEvent:
// who (client, tenant, source address), what (route, method, action, the
// authorizations involved), when, the outcome and the request ID. It carries
// no patient data. Records are only ever inserted.
type AuditRecord struct {
	ID        string    `bson:"_id" json:"id"`
	Time      time.Time `bson:"time" json:"time"`
	Expires   time.Time `bson:"expires" json:"-"`
	RequestID string    `bson:"requestId" json:"requestId"`
	// Type is the kind of access: "rest" (FHIR), "review", "cds-hook",
	// "token", "admin".
	Type string `bson:"type" json:"type"`
	// Action is AuditEvent.action: C, R, U, D or E (execute an operation).
	Action string `bson:"action" json:"action"`
	Method string `bson:"method" json:"method"`
	Route  string `bson:"route" json:"route"`
	Status int    `bson:"status" json:"status"`
	// Outcome is AuditEvent.outcome: 0 success, 4 minor failure (the
	// client's), 8 serious failure (Priora's).
	Outcome string `bson:"outcome" json:"outcome"`
	// Client is "" when the caller could not be authenticated.
	Client string `bson:"client,omitempty" json:"client,omitempty"`
	Tenant string `bson:"tenant,omitempty" json:"tenant,omitempty"`
	Source string `bson:"source,omitempty" json:"source,omitempty"`
	// Entities are the ids of what was touched (authorizations,
	// subscriptions) and a short result note, e.g. "3 match(es)".
	Entities []string `bson:"entities,omitempty" json:"entities,omitempty"`
	Detail   string   `bson:"detail,omitempty" json:"detail,omitempty"`
}

// AddAudit inserts an audit record.
func (s *Store) AddAudit(ctx context.Context, r *AuditRecord) error {
	if err := s.insert(ctx, s.db.Collection(collAudit), r); err != nil {
		return fmt.Errorf("store: audit: %w", err)
	}
	return nil
}

// AuditFilter selects audit records; zero fields match all.
type AuditFilter struct {
	Client string
	Tenant string
	Since  time.Time
	Limit  int64
}

// Audit lists audit records, newest first.
func (s *Store) Audit(ctx context.Context, f AuditFilter) ([]AuditRecord, error) {
	q := bson.D{}
	if f.Client != "" {
		q = append(q, bson.E{Key: "client", Value: f.Client})
	}
	if f.Tenant != "" {
		q = append(q, bson.E{Key: "tenant", Value: f.Tenant})
	}
	if !f.Since.IsZero() {
		q = append(q, bson.E{Key: "time", Value: bson.D{{Key: "$gte", Value: f.Since}}})
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	cur, err := s.db.Collection(collAudit).Find(ctx, q,
		options.Find().SetSort(bson.D{{Key: "time", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(f.Limit))
	if err != nil {
		return nil, fmt.Errorf("store: audit: %w", err)
	}
	out := []AuditRecord{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: audit: %w", err)
	}
	calls, err := s.hookCallAudit(ctx, f)
	if err != nil {
		return nil, err
	}
	out = append(out, calls...)
	slices.SortFunc(out, func(a, b AuditRecord) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	if int64(len(out)) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// hookCallAudit is the audit trail's view of the CDS Hooks call records:
// a hook call is recorded once, as its call record (store/hooks.go), and
// read here as an AuditRecord of type "cds-hook".
func (s *Store) hookCallAudit(ctx context.Context, f AuditFilter) ([]AuditRecord, error) {
	q := bson.D{}
	if f.Client != "" {
		q = append(q, bson.E{Key: "client", Value: f.Client})
	}
	if f.Tenant != "" {
		q = append(q, bson.E{Key: "tenant", Value: f.Tenant})
	}
	if !f.Since.IsZero() {
		q = append(q, bson.E{Key: "received", Value: bson.D{{Key: "$gte", Value: f.Since}}})
	}
	cur, err := s.db.Collection(hookCalls).Find(ctx, q, options.Find().
		SetSort(bson.D{{Key: "received", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(f.Limit).
		SetProjection(bson.D{{Key: "made", Value: 0}, {Key: "madeRec", Value: 0}}))
	if err != nil {
		return nil, fmt.Errorf("store: audit hook calls: %w", err)
	}
	calls, err := readHookCalls(ctx, cur)
	if err != nil {
		return nil, fmt.Errorf("store: audit hook calls: %w", err)
	}
	out := make([]AuditRecord, 0, len(calls))
	for _, c := range calls {
		r := AuditRecord{
			ID: c.ID, Time: c.Received, RequestID: c.RequestID, Type: "cds-hook", Action: "E",
			Method: "POST", Route: "/cds-services/:id", Status: c.Status, Outcome: "0",
			Client: c.Client, Tenant: c.Tenant, Source: c.Source, Detail: c.Outcome,
		}
		switch {
		case c.Status >= 500:
			r.Outcome = "8"
		case c.Status >= 400:
			r.Outcome = "4"
		}
		r.Entities = append(r.Entities, "cds-service/"+c.Service)
		for _, id := range c.Assertions {
			r.Entities = append(r.Entities, "coverage-assertion/"+id)
		}
		out = append(out, r)
	}
	return out, nil
}

// EnsureAuthIndexes creates the security collections' indexes on MongoDB:
// TTL indexes expire JWT IDs and audit records, and the audit trail is
// indexed by time and client. The embedded engine gets none: it has no TTL
// indexes (SweepExpired does their work), uses no index for a filter other
// than {_id: <string>}, and FerretDB v1 fails re-creating some indexes.
// FerretDB reached through a URI answers NotImplemented to TTL indexes;
// then no index is made either.
func (s *Store) EnsureAuthIndexes(ctx context.Context) error {
	if _, embedded := s.Embedded(); embedded {
		return nil
	}
	ttl := options.Index().SetExpireAfterSeconds(0)
	if _, err := s.db.Collection(collJTIs).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "expires", Value: 1}}, Options: ttl}); err != nil {
		if notImplemented(err) {
			return nil // FerretDB reached by URI: the sweeper expires documents
		}
		return fmt.Errorf("store: jti index: %w", err)
	}
	audit := []mongo.IndexModel{
		{Keys: bson.D{{Key: "expires", Value: 1}}, Options: ttl},
		{Keys: bson.D{{Key: "time", Value: 1}}},
		{Keys: bson.D{{Key: "client", Value: 1}, {Key: "time", Value: 1}}},
	}
	if _, err := s.db.Collection(collAudit).Indexes().CreateMany(ctx, audit); err != nil {
		return fmt.Errorf("store: audit indexes: %w", err)
	}
	return nil
}

func notImplemented(err error) bool {
	var ce mongo.CommandError
	if errors.As(err, &ce) && ce.Name == "NotImplemented" {
		return true
	}
	return strings.Contains(err.Error(), "NotImplemented")
}

// SweepExpired deletes JWT IDs that expired before now and, when audit is
// set, audit records past their retention. It returns how many went.
func (s *Store) SweepExpired(ctx context.Context, now time.Time, audit bool) (int64, error) {
	before := bson.D{{Key: "expires", Value: bson.D{{Key: "$lt", Value: now}}}}
	res, err := s.db.Collection(collJTIs).DeleteMany(ctx, before)
	if err != nil {
		return 0, fmt.Errorf("store: sweep jtis: %w", err)
	}
	n := res.DeletedCount
	if audit {
		res, err := s.db.Collection(collAudit).DeleteMany(ctx, before)
		if err != nil {
			return n, fmt.Errorf("store: sweep audit: %w", err)
		}
		n += res.DeletedCount
	}
	return n, nil
}
