package store

import (
	"context"
	"sort"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
)

// Command counts
//
// On the embedded engine each command costs a fixed amount of work (parse,
// an SQLite transaction, an fsync for a write) far above its work per
// document, so what a request costs the store is mostly how many commands
// it sends. The store counts every command it sends by origin, command
// name and collection. The origin is what the context names (WithOrigin:
// the server sets the HTTP route); work with no origin (background
// workers) counts under "". A grouped insert (group.go) counts once for
// every origin whose documents it carried, so that a request alone counts
// exactly the commands it would send with no one else around.

// CommandCount is how many commands of one kind an origin sent.
type CommandCount struct {
	Origin     string `json:"origin"`
	Command    string `json:"command"`
	Collection string `json:"collection,omitempty"`
	N          int64  `json:"n"`
}

type countKey struct{ origin, command, collection string }

type commandCounts struct {
	mu sync.Mutex
	n  map[countKey]int64
}

func (c *commandCounts) add(origin, command, collection string, n int64) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[countKey]int64{}
	}
	c.n[countKey{origin, command, collection}] += n
	c.mu.Unlock()
}

type originKey struct{}

// groupedKey marks the context of a grouped insert, which write counts
// per origin itself.
type groupedKey struct{}

// WithOrigin returns ctx naming origin as the origin of the store
// commands sent with it (CommandCounts).
func WithOrigin(ctx context.Context, origin string) context.Context {
	return context.WithValue(ctx, originKey{}, origin)
}

func originOf(ctx context.Context) string {
	o, _ := ctx.Value(originKey{}).(string)
	return o
}

// CommandCounts returns how many commands the store has sent since it was
// opened, by origin, command and collection, in that order.
func (s *Store) CommandCounts() []CommandCount {
	s.counts.mu.Lock()
	out := make([]CommandCount, 0, len(s.counts.n))
	for k, n := range s.counts.n {
		out = append(out, CommandCount{Origin: k.origin, Command: k.command, Collection: k.collection, N: n})
	}
	s.counts.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Origin != b.Origin {
			return a.Origin < b.Origin
		}
		if a.Command != b.Command {
			return a.Command < b.Command
		}
		return a.Collection < b.Collection
	})
	return out
}

// CommandsSent is how many commands of origin went to collection, of the
// command named ("" for any), since the store was opened.
func (s *Store) CommandsSent(origin, collection, command string) int64 {
	var n int64
	for _, c := range s.CommandCounts() {
		if c.Origin == origin && c.Collection == collection && (command == "" || c.Command == command) {
			n += c.N
		}
	}
	return n
}

// commandMonitor is the driver's monitor: it counts commands (by the
// origin on their context) and reports outcomes to onCommand.
func (s *Store) commandMonitor(opts Options) *event.CommandMonitor {
	m := &event.CommandMonitor{
		Started: func(ctx context.Context, e *event.CommandStartedEvent) {
			if ctx.Value(groupedKey{}) != nil {
				return
			}
			s.counts.add(originOf(ctx), e.CommandName, commandCollection(e.Command), 1)
		},
	}
	if f := opts.OnCommand; f != nil {
		m.Succeeded = func(_ context.Context, e *event.CommandSucceededEvent) { f(e.CommandName, true, e.Duration) }
		m.Failed = func(_ context.Context, e *event.CommandFailedEvent) { f(e.CommandName, false, e.Duration) }
	}
	return m
}

// commandCollection is the collection a command names: the string value
// of its first element ({insert: "keys", ...}); "" for commands on none.
func commandCollection(cmd bson.Raw) string {
	el, err := cmd.IndexErr(0)
	if err != nil {
		return ""
	}
	s, _ := el.Value().StringValueOK()
	return s
}
