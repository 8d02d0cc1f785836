// Package store keeps Priora's state in MongoDB. With no URI it starts an
// embedded MongoDB-wire server (FerretDB on SQLite) under the data directory,
// so that development, tests and small deployments use the same driver and
// the same code path as production on a MongoDB replica set.
//
// FerretDB v1 has no multi-document transactions, so every state change is
// one atomic single-document write (guarded by a version number) or an
// idempotent insert that can be replayed.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
)

// Sentinel errors of store operations.
var (
	ErrNotFound  = errors.New("store: not found")
	ErrConflict  = errors.New("store: concurrent update")
	ErrDuplicate = errors.New("store: duplicate key")
)

// Options say which MongoDB to use.
type Options struct {
	// URI of a MongoDB deployment; empty starts the embedded engine.
	URI string
	// DataDir holds the embedded engine's files (DataDir/store).
	DataDir string
	// Database name; when empty, the database named in URI's path
	// (mongodb://host/NAME?…), else "priora".
	Database string
	Logger   *slog.Logger
	// OnCommand, when set, is told of every MongoDB command's name,
	// outcome and duration (for metrics).
	OnCommand func(command string, ok bool, d time.Duration)
}

// Store is an open connection to Priora's database. It is safe for
// concurrent use.
type Store struct {
	client   *mongo.Client
	db       *mongo.Database
	embedded *embedded
	log      *slog.Logger
	// ferret is true on FerretDB (the embedded engine, or another
	// Priora's reached by URI): one SQLite writer, and no index is used
	// for a filter other than exactly {_id} (sqliteindex.go, group.go).
	ferret bool

	authorizations *mongo.Collection
	revisions      *mongo.Collection
	keys           *mongo.Collection
	members        *mongo.Collection
	schedule       *mongo.Collection
	outbox         *mongo.Collection
	bundles        *mongo.Collection

	// legacyMembers: the members collection holds entries (chains.go).
	legacyMembers bool

	group  groupInserts  // group.go
	counts commandCounts // count.go
}

type embedded struct {
	uri string
	dir string
	// sock is the engine's unix socket; sockDir, when set, is the private
	// directory made for it because dir was too long for a socket path.
	sock, sockDir string
	cancel        context.CancelFunc
	done          chan struct{}
	unlock        func() // releases the data directory (lock.go)
}

// Open connects to MongoDB (starting the embedded engine when opts.URI is
// empty), creates collections and indexes, and returns the Store.
func Open(ctx context.Context, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{log: log}
	s.group.counts = &s.counts
	uri := opts.URI
	if uri == "" {
		e, err := startEmbeddedLocked(opts.DataDir, func() (*embedded, error) { return startEmbedded(opts.DataDir, log) })
		if err != nil {
			return nil, err
		}
		s.embedded = e
		uri = e.uri
	}
	// A write is acknowledged only once it is journaled, and on a replica set
	// only once a majority has it: a 2xx from Priora means the data survives.
	wc := &writeconcern.WriteConcern{W: "majority", Journal: ptr(true)}
	if s.embedded != nil {
		wc = &writeconcern.WriteConcern{W: 1, Journal: ptr(true)}
	}
	copts := options.Client().ApplyURI(uri).SetWriteConcern(wc).
		SetServerSelectionTimeout(10 * time.Second).SetConnectTimeout(5 * time.Second)
	if s.embedded != nil {
		copts.SetMaxPoolSize(32)
	}
	copts.SetMonitor(s.commandMonitor(opts))
	client, err := mongo.Connect(copts)
	if err != nil {
		s.stopEmbedded()
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	s.client = client
	if err := client.Ping(ctx, nil); err != nil {
		s.Close(context.Background())
		return nil, fmt.Errorf("store: ping %s: %w", redactURI(uri), err)
	}
	s.ferret = s.embedded != nil || isFerretDB(ctx, client)
	s.group.serial = s.ferret
	name := opts.Database
	if name == "" {
		name = databaseFromURI(opts.URI)
	}
	s.db = client.Database(name)
	s.authorizations = s.db.Collection("authorizations")
	s.bundles = s.db.Collection("bundles")
	s.revisions = s.db.Collection("revisions")
	s.keys = s.db.Collection("keys")
	s.members = s.db.Collection("members")
	s.schedule = s.db.Collection("schedule")
	s.outbox = s.db.Collection("outbox")
	for _, c := range []*mongo.Collection{s.authorizations, s.revisions, s.keys, s.members, s.schedule, s.outbox, s.bundles} {
		if err := s.db.CreateCollection(ctx, c.Name()); err != nil && !isNamespaceExists(err) {
			s.Close(context.Background())
			return nil, fmt.Errorf("store: create collection %s: %w", c.Name(), err)
		}
	}
	if err := s.ensureIndexes(ctx); err != nil {
		s.Close(context.Background())
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close(context.Background())
		return nil, err
	}
	if err := s.indexEmbeddedIDs(ctx); err != nil {
		s.Close(context.Background())
		return nil, err
	}
	// Member entries of chains from before submission keys held member
	// ids are read only where there are any (chains.go).
	switch err := s.members.FindOne(ctx, bson.D{}).Err(); {
	case err == nil:
		s.legacyMembers = true
	case !errors.Is(err, mongo.ErrNoDocuments):
		s.Close(context.Background())
		return nil, fmt.Errorf("store: read members: %w", err)
	}
	return s, nil
}

func startEmbedded(dataDir string, log *slog.Logger) (*embedded, error) {
	if dataDir == "" {
		return nil, errors.New("store: a data directory is required for the embedded engine")
	}
	dir, err := filepath.Abs(filepath.Join(dataDir, "store"))
	if err != nil {
		return nil, fmt.Errorf("store: data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: data dir: %w", err)
	}
	// synchronous(full) makes SQLite fsync the WAL on every commit, so an
	// acknowledged write survives a power cut, not only a process crash.
	sqliteURL := (&url.URL{Scheme: "file", Path: dir + "/", RawQuery: "_pragma=synchronous(full)"}).String()
	sock, sockDir, err := socketPath(dir)
	if err != nil {
		return nil, err
	}
	fdbLog := log.With("component", "ferretdb")
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{Unix: sock},
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
		Logger:    slog.New(levelFloor{Handler: fdbLog.Handler(), min: slog.LevelError}),
	})
	if err != nil {
		removeSocket(sock, sockDir)
		return nil, fmt.Errorf("store: start embedded engine: %w", err)
	}
	// The socket is created with the umask's mode inside a 0700 directory;
	// narrow it to the owner before any client could reach it.
	if err := os.Chmod(sock, 0o600); err != nil {
		removeSocket(sock, sockDir)
		return nil, fmt.Errorf("store: embedded engine socket: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &embedded{uri: socketURI(sock), dir: dir, sock: sock, sockDir: sockDir, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		if err := f.Run(ctx); err != nil {
			log.Error("embedded store stopped", "err", err)
		}
		removeSocket(sock, sockDir)
	}()
	return e, nil
}

// levelFloor drops records below a level; FerretDB logs every failed command
// (such as an expected duplicate-key insert) at WARN. FerretDB also makes
// a logger with attributes for every connection and command, which a
// handler formats at once; levelFloor only remembers them and applies
// them to the few records that pass the floor.
type levelFloor struct {
	slog.Handler
	min  slog.Level
	with []func(slog.Handler) slog.Handler // pending WithAttrs and WithGroup
}

func (l levelFloor) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.min && l.Handler.Enabled(ctx, lv)
}

func (l levelFloor) Handle(ctx context.Context, r slog.Record) error {
	h := l.Handler
	for _, w := range l.with {
		h = w(h)
	}
	return h.Handle(ctx, r)
}

func (l levelFloor) WithAttrs(as []slog.Attr) slog.Handler {
	return levelFloor{l.Handler, l.min, append(l.with[:len(l.with):len(l.with)], func(h slog.Handler) slog.Handler { return h.WithAttrs(as) })}
}

func (l levelFloor) WithGroup(g string) slog.Handler {
	return levelFloor{l.Handler, l.min, append(l.with[:len(l.with):len(l.with)], func(h slog.Handler) slog.Handler { return h.WithGroup(g) })}
}

// Embedded reports whether the store runs the in-process engine, and its URI.
func (s *Store) Embedded() (string, bool) {
	if s.embedded == nil {
		return "", false
	}
	return s.embedded.uri, true
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.client.Ping(ctx, nil)
}

// FerretDB reports whether the store is FerretDB (the embedded engine, or
// another process's reached by URI), which reads a whole collection for
// any filter but {_id}.
func (s *Store) FerretDB() bool { return s.ferret }

// DB is the underlying database, for packages that own collections of their own.
func (s *Store) DB() *mongo.Database { return s.db }

// Close disconnects and stops the embedded engine.
func (s *Store) Close(ctx context.Context) error {
	// Records written in the background (call records, audit) are written
	// before the connection goes: a clean shutdown loses none.
	err := s.group.drainLater(ctx)
	if err != nil {
		s.log.Error("closing the store", "err", err)
	}
	if s.client != nil {
		err = errors.Join(err, s.client.Disconnect(ctx))
	}
	s.stopEmbedded()
	return err
}

func (s *Store) stopEmbedded() {
	if s.embedded == nil {
		return
	}
	s.embedded.cancel()
	<-s.embedded.done
	if s.embedded.unlock != nil {
		s.embedded.unlock()
	}
	s.embedded = nil
}

// redactURI hides credentials in a MongoDB URI.
func redactURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "<unparseable uri>"
	}
	if u.User != nil {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// RedactURI hides the password of a MongoDB URI, for logs and start-up output.
func RedactURI(uri string) string {
	if uri == "" {
		return ""
	}
	return redactURI(uri)
}

func ptr[T any](v T) *T { return &v }

func isDuplicate(err error) bool {
	return mongo.IsDuplicateKeyError(err) || (err != nil && strings.Contains(err.Error(), "E11000"))
}

// isNamespaceExists reports the error of creating a collection that exists.
func isNamespaceExists(err error) bool {
	var ce mongo.CommandError
	return errors.As(err, &ce) && (ce.Code == 48 || ce.Name == "NamespaceExists")
}

// byID loads the document with _id id from c — the one filter the embedded
// engine answers without scanning. It returns ErrNotFound when there is
// none; what names the document in other errors.
func byID[T any](ctx context.Context, c *mongo.Collection, id, what string) (*T, error) {
	var v T
	err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&v)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: load %s: %w", what, err)
	}
	return &v, nil
}

// databaseFromURI is the database a MongoDB connection string names in its
// path, or "priora" when it names none (or is not a valid URI, which Connect
// reports itself).
func databaseFromURI(uri string) string {
	if uri == "" {
		return "priora"
	}
	cs, err := connstring.Parse(uri)
	if err != nil || cs.Database == "" {
		return "priora"
	}
	return cs.Database
}
