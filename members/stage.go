package members

import (
	"context"
	"time"

	"github.com/priora/priora/store"
)

// spillMap is what an import remembers by key — its Patients for the
// Coverages that refer to them, and the person first imported under each
// member id — in bounded memory: up to limit keys in a map, and once the
// map is full, all of them moved to the store's import stage (one grouped
// write) so that the map starts again empty. Memory stays flat however
// large the import; a key read after it was moved costs a lookup by _id.
type spillMap struct {
	st      *store.Store
	run     string // the import run's stage
	prefix  string // the map's name and "/", before each key in the stage
	limit   int
	mem     map[string][]byte
	spilled bool
	now     func() time.Time
}

func newSpillMap(st *store.Store, run, name string, limit int, now func() time.Time) *spillMap {
	return &spillMap{st: st, run: run, prefix: name + "/", limit: limit, mem: make(map[string][]byte), now: now}
}

func (m *spillMap) put(ctx context.Context, key string, v []byte) error {
	if _, ok := m.mem[key]; !ok && len(m.mem) >= m.limit {
		out := make(map[string][]byte, len(m.mem))
		for k, v := range m.mem {
			out[m.prefix+k] = v
		}
		if err := m.st.StagePut(ctx, m.run, out, m.now()); err != nil {
			return err
		}
		clear(m.mem)
		m.spilled = true
	}
	m.mem[key] = v
	return nil
}

// get is the value of key, from memory or, once the map has spilled, from
// the stage.
func (m *spillMap) get(ctx context.Context, key string) ([]byte, bool, error) {
	if v, ok := m.mem[key]; ok {
		return v, true, nil
	}
	if !m.spilled {
		return nil, false, nil
	}
	got, err := m.st.StageGet(ctx, m.run, []string{m.prefix + key})
	if err != nil {
		return nil, false, err
	}
	v, ok := got[m.prefix+key]
	return v, ok, nil
}

// getMany is get for several keys, the stage read at once.
func (m *spillMap) getMany(ctx context.Context, keys []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(keys))
	var rest []string
	for _, k := range keys {
		if v, ok := m.mem[k]; ok {
			out[k] = v
		} else if m.spilled {
			rest = append(rest, m.prefix+k)
		}
	}
	if len(rest) == 0 {
		return out, nil
	}
	got, err := m.st.StageGet(ctx, m.run, rest)
	for k, v := range got {
		out[k[len(m.prefix):]] = v
	}
	return out, err
}

func (m *spillMap) len() int { return len(m.mem) }
