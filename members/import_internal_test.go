package members

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/priora/priora/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	return st
}

func ndjson(lines ...string) []Source {
	body := strings.Join(lines, "\n")
	return []Source{{Name: "t", Format: NDJSON, Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }}}
}

func patientLine(i int, family string) string {
	return fmt.Sprintf(`{"resourceType":"Patient","id":"p%d","name":[{"family":"%s","given":["G%d"]}],"birthDate":"1970-01-%02d"}`, i, family, i, 1+i%28)
}

func coverageLine(id string, i int, member string) string {
	return fmt.Sprintf(`{"resourceType":"Coverage","id":"%s","status":"active","subscriberId":"%s","beneficiary":{"reference":"Patient/p%d"},"payor":[{"identifier":{"system":"urn:payer","value":"A"}}]}`, id, member, i)
}

// TestImportSpillsToTheStage imports with memory bounds far below the
// import's size, so that Patients and member ids are read back from the
// store's import stage: the result must be the one an unbounded import
// gives, the duplicate-person check included, and the stage is empty after.
func TestImportSpillsToTheStage(t *testing.T) {
	defer func(p, q int) { patientsInMemory, peopleInMemory = p, q }(patientsInMemory, peopleInMemory)
	patientsInMemory, peopleInMemory = 3, 3
	const n = 40
	var lines []string
	for i := 0; i < n; i++ { // every Patient first: each Coverage finds its Patient in the stage
		lines = append(lines, patientLine(i, "FAM"))
	}
	for i := 0; i < n; i++ {
		lines = append(lines, coverageLine(fmt.Sprintf("c%d", i), i, fmt.Sprintf("M%d", i)))
	}
	// M1 again for the same person (a second coverage) and for another.
	lines = append(lines, coverageLine("c1-b", 1, "M1"), patientLine(100, "OTHER"), coverageLine("c100", 100, "M2"))
	st := openStore(t)
	ctx := context.Background()
	r := New(st, Auto, nil)
	for _, allOrNothing := range []bool{false, true} {
		rep, err := r.Import(ctx, ndjson(lines...), Options{Run: "spill", AllOrNothing: allOrNothing})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Errors) != 1 || rep.Errors[0].Line != len(lines) || !strings.Contains(rep.Errors[0].Reason, "two different people") {
			t.Fatalf("all-or-nothing %v: want one error for the second person under M2 on line %d, got %+v", allOrNothing, len(lines), rep.Errors)
		}
		if !allOrNothing && (rep.Created != n || rep.Updated != 1) {
			t.Errorf("want %d created and 1 updated (M1's second coverage), got %+v", n, rep)
		}
	}
	m, err := st.Member(ctx, "|M2")
	if err != nil || m.Family != "FAM" {
		t.Errorf("M2 must stay the first person: %+v %v", m, err)
	}
	if m, err := st.Member(ctx, "|M1"); err != nil || len(m.Coverages) != 2 {
		t.Errorf("M1 must have two coverages: %+v %v", m, err)
	}
	if n, err := st.CountImportStage(ctx); err != nil || n != 0 {
		t.Errorf("the import stage keeps %d documents after the imports (%v)", n, err)
	}
}

// blockingSource hands out its first line, then waits for release.
type blockingSource struct {
	first   string
	started chan struct{}
	release chan struct{}
	sent    bool
}

func (b *blockingSource) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		close(b.started)
		return copy(p, b.first+"\n"), nil
	}
	<-b.release
	return 0, io.EOF
}

func (b *blockingSource) Close() error { return nil }

// TestOneImportAtATime: a second roster on the same store (as a second
// process would have) is refused while an import runs, and can import
// once it has finished.
func TestOneImportAtATime(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	a, b := New(st, Auto, nil), New(st, Auto, nil)
	src := &blockingSource{first: patientLine(1, "FAM"), started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := a.Import(ctx, []Source{{Name: "slow", Format: NDJSON, Open: func() (io.ReadCloser, error) { return src, nil }}}, Options{})
		done <- err
	}()
	<-src.started
	if _, err := b.Import(ctx, ndjson(patientLine(2, "X"), coverageLine("c2", 2, "M2")), Options{}); !errors.Is(err, ErrImportRunning) {
		t.Errorf("a second import while one runs: want ErrImportRunning, got %v", err)
	}
	close(src.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rep, err := b.Import(ctx, ndjson(patientLine(2, "X"), coverageLine("c2", 2, "M2")), Options{}); err != nil || rep.Created != 1 {
		t.Errorf("after the first import: %+v %v", rep, err)
	}
}
