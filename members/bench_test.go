package members_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/priora/priora/members"
	"github.com/priora/priora/store"
)

// roster writes n generated members as NDJSON: one payer Organization,
// then each Patient followed by its Coverage; every fifth member is the
// spouse (a dependent) of the member before.
func roster(n int) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriter(pw)
		fmt.Fprintln(w, `{"resourceType":"Organization","id":"payer","identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1234567893"}],"name":"Bench Health"}`)
		for i := 0; i < n; i++ {
			sub, rel := i, "self"
			if i%5 == 4 {
				sub, rel = i-1, "spouse"
			}
			fmt.Fprintf(w, `{"resourceType":"Patient","id":"p%d","name":[{"family":"FAMILY%d","given":["GIVEN%d"]}],"birthDate":"19%02d-%02d-%02d","gender":"female"}`+"\n",
				i, i, i, 30+i%70, 1+i%12, 1+i%28)
			fmt.Fprintf(w, `{"resourceType":"Coverage","id":"c%d","status":"active","type":{"text":"Commercial"},`+
				`"identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MB"}]},"system":"https://bench.example/member","value":"M%08d"}],`+
				`"subscriberId":"M%08d","relationship":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/subscriber-relationship","code":"%s"}]},`+
				`"beneficiary":{"reference":"Patient/p%d"},"payor":[{"reference":"Organization/payer"}],"period":{"start":"2026-01-01"},`+
				`"class":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/coverage-class","code":"plan"}]},"value":"PLAN-%d"}]}`+"\n",
				i, i, sub, rel, i, i%7)
		}
		pw.CloseWithError(w.Flush())
	}()
	return pr
}

// peakRSS is the process's peak resident set size in MiB (Linux VmHWM;
// the embedded store runs in this process too).
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// heapAtEOF wraps an import stream and records the Go heap in use (after
// a collection) when the importer reads its end: everything the import
// remembers about what it read is still live then.
type heapAtEOF struct {
	io.ReadCloser
	done bool
	heap uint64
}

func (h *heapAtEOF) Read(p []byte) (int, error) {
	n, err := h.ReadCloser.Read(p)
	if err == io.EOF && !h.done {
		h.done = true
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		h.heap = ms.HeapAlloc
	}
	return n, err
}

// BenchmarkImport100k imports 100,000 generated members into the embedded
// store, then imports them again (all unchanged), and reports the rates
// the peak RSS and the Go heap in use at the end of the stream (flat: the
// import keeps at most patientsInMemory Patients and peopleInMemory member
// ids in memory, the rest in the store's import stage):
//
//	go test -run xxx -bench Import100k -benchtime 1x ./members
//
// (PRIORA_BENCH_MEMBERS=N imports N instead.)
func BenchmarkImport100k(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("PRIORA_BENCH_MEMBERS")); err == nil && v > 0 {
		n = v // a quicker run
	}
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		st, err := store.Open(ctx, store.Options{DataDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		r := members.New(st, members.Auto, nil)
		var first *heapAtEOF
		src := []members.Source{{Name: "generated", Format: members.NDJSON, Open: func() (io.ReadCloser, error) {
			h := &heapAtEOF{ReadCloser: roster(n)}
			if first == nil {
				first = h
			}
			return h, nil
		}}}
		before := peakRSS()
		t0 := time.Now()
		rep, err := r.Import(ctx, src, members.Options{Run: "bench"})
		if err != nil || rep.Created != n || len(rep.Errors) > 0 {
			b.Fatalf("import: %v %+v", err, rep)
		}
		took := time.Since(t0)
		t1 := time.Now()
		rep, err = r.Import(ctx, src, members.Options{Run: "bench-again"})
		if err != nil || rep.Unchanged != n {
			b.Fatalf("re-import: %v %+v", err, rep)
		}
		again := time.Since(t1)
		b.ReportMetric(float64(n)/took.Seconds(), "members/s")
		b.ReportMetric(float64(first.heap)/(1<<20), "heapAtEOF-MiB")
		b.ReportMetric(float64(n)/again.Seconds(), "unchanged/s")
		b.ReportMetric(peakRSS(), "peakRSS-MiB")
		b.ReportMetric(before, "RSS-before-MiB")
		st.Close(ctx)
	}
}
