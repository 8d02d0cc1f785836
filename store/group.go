package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Group commit
//
// On the embedded engine every insert is an SQLite transaction with an
// fsync, and FerretDB's own work per command dwarfs the work per document.
// Concurrent requests that insert into the same collection therefore share
// one insert: while one InsertMany is on its way, the documents of the
// requests that arrive queue up, and the next InsertMany carries them all
// (one transaction, one fsync). Each caller still returns only when its
// own documents are durable, with its own outcome: nil, a duplicate-key
// error for a document whose _id exists (exactly as InsertOne would say —
// an unordered InsertMany reports each failed document by its index), or
// the error of the batch. Nothing else changes: an insert is still an
// insert under a unique _id, so the revision insert stays the
// compare-and-swap it is (chains.go).

// maxGroup bounds the documents of one InsertMany.
const maxGroup = 256

// errDuplicateKey is what a grouped insert of an existing _id returns; it
// satisfies isDuplicate and errors.Is(err, ErrDuplicate).
var errDuplicateKey = fmt.Errorf("%w: E11000 duplicate key error", ErrDuplicate)

type groupInserts struct {
	counts *commandCounts
	// later counts the background inserts not yet written (insertLater);
	// Close waits for them.
	later  sync.WaitGroup
	mu     sync.Mutex
	queues map[string]*insertQueue // by collection name
	// serial makes the queues take turns to write (the embedded engine):
	// SQLite has one writer, and a writer that finds the database locked
	// sleeps and retries, so queues that write at once only slow each
	// other down; waiting here instead lets their next batches grow.
	serial  bool
	writing sync.Mutex
}

type insertQueue struct {
	g       *groupInserts
	coll    *mongo.Collection
	mu      sync.Mutex
	pending []*insertReq
	busy    bool
}

type insertReq struct {
	// origin is the origin of the caller's context (count.go).
	origin string
	docs   []any
	errs   []error // per document
	err    error   // the first of errs
	done   chan struct{}
	// written, when set, is called once the batch is written (or failed):
	// a background insert has no caller waiting on done.
	written func(*insertReq)
}

func (g *groupInserts) queue(c *mongo.Collection) *insertQueue {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.queues == nil {
		g.queues = map[string]*insertQueue{}
	}
	q := g.queues[c.Name()]
	if q == nil {
		q = &insertQueue{g: g, coll: c}
		g.queues[c.Name()] = q
	}
	return q
}

// insert inserts docs into c together with the concurrent inserts of other
// callers, and returns once they are written (or ctx ends: the documents
// may then still be written, as with an InsertOne whose answer was lost).
func (s *Store) insert(ctx context.Context, c *mongo.Collection, docs ...any) error {
	_, err := s.insertEach(ctx, c, docs...)
	return err
}

// insertNew inserts docs like insert, where a document whose _id exists
// already is no error (idempotent writes of derived entries).
func (s *Store) insertNew(ctx context.Context, c *mongo.Collection, docs ...any) error {
	errs, err := s.insertEach(ctx, c, docs...)
	if err == nil || errs == nil {
		return err
	}
	for _, e := range errs {
		if e != nil && !isDuplicate(e) {
			return e
		}
	}
	return nil
}

// insertEach is insert with the outcome of each document: errs[i] is nil,
// a duplicate-key error or the batch's error (errs is nil when ctx ended
// first; err says so).
func (s *Store) insertEach(ctx context.Context, c *mongo.Collection, docs ...any) (errs []error, err error) {
	if len(docs) == 0 {
		return nil, nil
	}
	r := &insertReq{origin: originOf(ctx), docs: docs, errs: make([]error, len(docs)), done: make(chan struct{})}
	s.group.queue(c).add(r)
	select {
	case <-r.done:
		return r.errs, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// insertLater queues docs for c's next group commit and returns at once:
// for records nothing waits on (call records, audit). They share the
// batches of the inserts that are waited on, so they cost no commit of
// their own; Close writes what is still queued before it disconnects. A
// failed write is logged (what names the records).
func (s *Store) insertLater(c *mongo.Collection, what string, docs ...any) {
	if len(docs) == 0 {
		return
	}
	s.group.later.Add(1)
	r := &insertReq{docs: docs, errs: make([]error, len(docs)), done: make(chan struct{}), written: func(r *insertReq) {
		defer s.group.later.Done()
		for _, err := range r.errs {
			if err != nil && !isDuplicate(err) {
				s.log.Error("store: a background write failed", "what", what, "collection", c.Name(), "err", err)
				return
			}
		}
	}}
	s.group.queue(c).add(r)
}

// drainLater waits until every background insert is written, or ctx ends.
func (g *groupInserts) drainLater(ctx context.Context) error {
	done := make(chan struct{})
	go func() { g.later.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("store: background writes not drained: %w", ctx.Err())
	}
}

// add queues r and starts the queue's writer when it is idle.
func (q *insertQueue) add(r *insertReq) {
	q.mu.Lock()
	q.pending = append(q.pending, r)
	lead := !q.busy
	q.busy = true
	q.mu.Unlock()
	if lead {
		go q.drain()
	}
}

// drain writes the queue until it is empty.
func (q *insertQueue) drain() {
	for {
		q.mu.Lock()
		var batch []*insertReq
		n := 0
		for len(q.pending) > 0 && (n == 0 || n+len(q.pending[0].docs) <= maxGroup) {
			n += len(q.pending[0].docs)
			batch = append(batch, q.pending[0])
			q.pending = q.pending[1:]
		}
		if len(batch) == 0 {
			q.busy = false
			q.pending = nil
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		if q.g.serial {
			q.g.writing.Lock()
		}
		q.write(batch)
		if q.g.serial {
			q.g.writing.Unlock()
		}
	}
}

func (q *insertQueue) write(batch []*insertReq) {
	defer func() {
		for _, r := range batch {
			close(r.done)
			if r.written != nil {
				r.written(r)
			}
		}
	}()
	type slot struct {
		r *insertReq
		i int
	}
	var docs []any
	var owner []slot
	for _, r := range batch {
		for i, d := range r.docs {
			docs = append(docs, d)
			owner = append(owner, slot{r, i})
		}
	}
	fail := func(r *insertReq, i int, err error) {
		r.errs[i] = err
		if r.err == nil {
			r.err = err
		}
	}
	// One command, counted once for each origin it carries documents of.
	origins := map[string]bool{}
	for _, r := range batch {
		if !origins[r.origin] {
			origins[r.origin] = true
			q.g.counts.add(r.origin, "insert", q.coll.Name(), 1)
		}
	}
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), groupedKey{}, true), 30*time.Second)
	defer cancel()
	_, err := q.coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		return
	}
	var bwe mongo.BulkWriteException
	failAll := func() {
		for _, o := range owner {
			fail(o.r, o.i, err)
		}
	}
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		failAll()
		return
	}
	for _, we := range bwe.WriteErrors {
		if we.Index < 0 || we.Index >= len(owner) {
			failAll()
			return
		}
		o := owner[we.Index]
		if we.Code == 11000 {
			fail(o.r, o.i, errDuplicateKey)
		} else {
			fail(o.r, o.i, fmt.Errorf("store: insert into %s: %w", q.coll.Name(), we.WriteError))
		}
	}
}
