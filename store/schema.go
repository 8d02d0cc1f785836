package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Store schema versions. Each Priora release knows the newest schema it
// writes (SchemaVersion) and the migrations from every older one. On start,
// Open brings an older database up to SchemaVersion, one migration at a
// time, recording each step; a database written by a newer Priora is
// refused, so a rolled-back binary cannot misread data it does not know.
//
// A migration must be idempotent (a crash may stop it half-way and the next
// start runs it again) and safe while older replicas still serve: during a
// rolling upgrade they read documents the migration has already touched.

// SchemaVersion is the schema this code reads and writes.
const SchemaVersion = 3

// ErrSchemaTooNew means the database was written by a newer Priora.
var ErrSchemaTooNew = errors.New("store: the database was written by a newer Priora")

// migrations[n] brings schema n to n+1. Schema 0 is a database from before
// schema versions were recorded; its layout is schema 1's, so the step only
// records the version.
var migrations = map[int]func(ctx context.Context, s *Store) error{
	0: func(context.Context, *Store) error { return nil },
	1: func(ctx context.Context, s *Store) error { return s.migrateReviewStates(ctx) },
	// 2→3: revisions and request Bundles are written deflated (deflate.go).
	// Nothing is rewritten (both forms are read), but a release before
	// schema 3 cannot read the new form, so the version must keep it from
	// starting on such a database.
	2: func(context.Context, *Store) error { return nil },
}

// migrateReviewStates (schema 1→2) records the review state on the heads
// of chains written before the work queue kept one, so that filtering the
// queue by state finds them. Those chains have no assignee, appeal or
// information received: a pended one is awaiting-info when a pended item
// asks for documents, else new. Later writes keep the state themselves
// (pas.settle). Setting it again is harmless, so the step can be redone.
func (s *Store) migrateReviewStates(ctx context.Context) error {
	cur, err := s.authorizations.Find(ctx, bson.D{{Key: "state", Value: bson.D{{Key: "$exists", Value: false}}}},
		options.Find().SetProjection(bson.D{{Key: "status", Value: 1}, {Key: "items", Value: 1}}))
	if err != nil {
		return fmt.Errorf("store: review states: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var h struct {
			ID     string `bson:"_id"`
			Status string `bson:"status"`
			Items  []Item `bson:"items"`
		}
		if err := cur.Decode(&h); err != nil {
			return fmt.Errorf("store: review states: %w", err)
		}
		state := map[string]string{"complete": "decided", "cancelled": "cancelled"}[h.Status]
		if h.Status == "pended" {
			state = "new"
			for _, it := range h.Items {
				if it.Decision.Action == "pend" && len(it.Decision.RequestInfo) > 0 {
					state = "awaiting-info"
				}
			}
		}
		if state == "" {
			continue
		}
		if _, err := s.authorizations.UpdateOne(ctx, bson.D{{Key: "_id", Value: h.ID}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: state}}}}); err != nil {
			return fmt.Errorf("store: review state of %s: %w", h.ID, err)
		}
	}
	return cur.Err()
}

// schemaDoc is the one document of the "meta" collection that records the
// schema version.
type schemaDoc struct {
	ID      string    `bson:"_id"`
	Version int       `bson:"version"`
	Updated time.Time `bson:"updated"`
	// History lists the migrations applied, oldest first.
	History []string `bson:"history,omitempty"`
}

const schemaID = "schema"

// migrate reads the recorded schema version and runs the migrations up to
// SchemaVersion.
func (s *Store) migrate(ctx context.Context) error {
	meta := s.db.Collection("meta")
	var doc schemaDoc
	switch err := meta.FindOne(ctx, bson.D{{Key: "_id", Value: schemaID}}).Decode(&doc); {
	case errors.Is(err, mongo.ErrNoDocuments):
		doc = schemaDoc{ID: schemaID}
	case err != nil:
		return fmt.Errorf("store: read schema version: %w", err)
	}
	if doc.Version > SchemaVersion {
		return fmt.Errorf("%w: schema %d, this binary knows up to %d; run the newer release (or restore a backup taken before the upgrade)",
			ErrSchemaTooNew, doc.Version, SchemaVersion)
	}
	for v := doc.Version; v < SchemaVersion; v++ {
		step, ok := migrations[v]
		if !ok {
			return fmt.Errorf("store: no migration from schema %d", v)
		}
		if err := step(ctx, s); err != nil {
			return fmt.Errorf("store: migration %d→%d: %w", v, v+1, err)
		}
		now := time.Now().UTC()
		// Only ever forward: a replica running an older migration concurrently
		// cannot move the version back.
		_, err := meta.UpdateOne(ctx, bson.D{{Key: "_id", Value: schemaID}, {Key: "version", Value: bson.D{{Key: "$lte", Value: v}}}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: v + 1}, {Key: "updated", Value: now}}},
				{Key: "$push", Value: bson.D{{Key: "history", Value: fmt.Sprintf("%d→%d at %s", v, v+1, now.Format(time.RFC3339))}}}},
			options.UpdateOne().SetUpsert(true))
		if err != nil && !isDuplicate(err) {
			return fmt.Errorf("store: record schema %d: %w", v+1, err)
		}
		s.log.Info("store schema migrated", "from", v, "to", v+1)
	}
	return nil
}

// Schema reports the database's recorded schema version.
func (s *Store) Schema(ctx context.Context) (int, error) {
	var doc schemaDoc
	err := s.db.Collection("meta").FindOne(ctx, bson.D{{Key: "_id", Value: schemaID}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	return doc.Version, err
}
