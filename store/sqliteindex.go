package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	_ "modernc.org/sqlite" // the SQLite driver FerretDB itself uses
)

// The embedded engine answers a filter of exactly {_id: value} with
//
//	SELECT … FROM <table> WHERE _ferretdb_sjson->'$._id' = ?
//
// but indexes _id on the expression _ferretdb_sjson->"_id", which SQLite
// does not recognise as the same: every lookup by _id reads and parses the
// JSON of every row. indexEmbeddedIDs adds, to each collection table, an
// index on the very expression the query uses, which turns those lookups
// (and the updates and deletes that start with them) into index searches.
// It is idempotent, and SQLite keeps the index up to date on its own; a
// collection created later gets its index at the next call.
func (s *Store) indexEmbeddedIDs(ctx context.Context) error {
	if s.embedded == nil {
		return nil
	}
	// Collections created by their first insert would have no index until
	// the next start: create the ones read by _id now.
	for _, name := range []string{coverageAssertions, hookCalls, collAudit, collJTIs, collRoster, collRosterKeys, collImportStage, collDueWatch} {
		if err := s.db.CreateCollection(ctx, name); err != nil && !isNamespaceExists(err) {
			return fmt.Errorf("store: create collection %s: %w", name, err)
		}
	}
	if err := s.dropUnreadIndexes(ctx); err != nil {
		return err
	}
	file := filepath.Join(s.embedded.dir, s.db.Name()+".sqlite")
	dsn := (&url.URL{Scheme: "file", Path: file, RawQuery: "_pragma=busy_timeout(10000)"}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("store: open %s: %w", file, err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM "_ferretdb_collections"`)
	if err != nil {
		return fmt.Errorf("store: list embedded tables: %w", err)
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return fmt.Errorf("store: list embedded tables: %w", err)
		}
		tables = append(tables, t)
	}
	rows.Close()
	for _, t := range tables {
		if !tableName.MatchString(t) {
			continue
		}
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, t+"_priora_id", t)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("store: index %s: %w", t, err)
		}
	}
	return nil
}

// createIndexes creates indexes on c. On FerretDB it creates only the
// unique ones: FerretDB v1 on SQLite answers every filter but
// exactly {_id} by scanning the collection, so any other index would be
// written on every insert and never read (EnsureAuthIndexes does the
// same). A unique index is a constraint, and is kept everywhere.
func (s *Store) createIndexes(ctx context.Context, c *mongo.Collection, models ...mongo.IndexModel) error {
	if s.ferret {
		kept := models[:0:0]
		for _, m := range models {
			if isUnique(m) {
				kept = append(kept, m)
			}
		}
		models = kept
	}
	if len(models) == 0 {
		return nil
	}
	if _, err := c.Indexes().CreateMany(ctx, models); err != nil {
		return fmt.Errorf("store: create index on %s: %w", c.Name(), err)
	}
	return nil
}

func isUnique(m mongo.IndexModel) bool {
	if m.Options == nil {
		return false
	}
	var o options.IndexOptions
	for _, set := range m.Options.List() {
		_ = set(&o)
	}
	return o.Unique != nil && *o.Unique
}

// dropUnreadIndexes removes, on the embedded engine, the non-unique
// secondary indexes that earlier versions created (createIndexes no
// longer does): they cost every insert and serve no query. It is
// idempotent and cheap once done.
func (s *Store) dropUnreadIndexes(ctx context.Context) error {
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("store: list collections: %w", err)
	}
	for _, name := range names {
		c := s.db.Collection(name)
		specs, err := c.Indexes().ListSpecifications(ctx)
		if err != nil {
			return fmt.Errorf("store: list indexes of %s: %w", name, err)
		}
		for _, sp := range specs {
			if sp.Name == "_id_" || (sp.Unique != nil && *sp.Unique) {
				continue
			}
			if err := c.Indexes().DropOne(ctx, sp.Name); err != nil {
				return fmt.Errorf("store: drop index %s of %s: %w", sp.Name, name, err)
			}
		}
	}
	return nil
}

// isFerretDB reports whether the server is FerretDB (its buildInfo has
// ferretdbVersion).
func isFerretDB(ctx context.Context, c *mongo.Client) bool {
	var info bson.M
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return false
	}
	_, ok := info["ferretdbVersion"]
	return ok
}

var tableName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// IndexCollections makes lookups by _id fast on the embedded engine for
// every collection that exists now. Packages that create collections after
// Open call it once they have; it is cheap and idempotent.
func (s *Store) IndexCollections(ctx context.Context) error { return s.indexEmbeddedIDs(ctx) }
