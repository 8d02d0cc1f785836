package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSubmitMemoryBound is #13's finding 5 measured: a 2.9 MiB $submit
// Bundle of empty entries took Priora to 2.57 GB of RSS. Priora runs as a
// child process; its peak RSS (VmHWM) after a warm-up is the baseline.
// Then come the attack once, the attack eight times at once (four are
// worked on, the rest wait or get 503), the attack at the full 10 MiB body
// cap, and a body built to stay just inside the JSON limits (about 45,000
// values in 980 entries). The peak growth under each attack must stay
// within 10× the bodies in work at once. The body inside the limits is
// parsed in full and costs more than that: its growth is logged, with the
// others, for docs/operations.md's sizing, not asserted.
func TestSubmitMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Priora")
	}
	deadline := time.Now().Add(300 * time.Second) // a guard against a hang, not a speed target
	bin := buildPriora(t)
	addr := freeAddr(t)
	c := startChild(t, bin, addr, t.TempDir(), deadline, "PRIORA_LOG_LEVEL=error")
	defer c.stop(t)
	pid := c.cmd.Process.Pid
	url := "http://" + addr + "/fhir/Claim/$submit"
	client := &http.Client{Timeout: 60 * time.Second}

	// Warm-up: a real request loads the validator and the parsers.
	good, err := os.ReadFile("../../testdata/pas/kit/approval_pa_submit_request_payload.json")
	if err != nil {
		t.Fatal(err)
	}
	if st, body, err := post(client, url, good); err != nil || st != http.StatusOK {
		t.Fatalf("warm-up: %d %v %s", st, err, snip(body))
	}
	base := peakRSS(t, pid)
	t.Logf("baseline peak RSS after warm-up: %.1f MiB", mib(base))

	empty := func(size int) []byte {
		head := `{"resourceType":"Bundle","type":"collection","identifier":{"value":"x"},"entry":[`
		n := (size - len(head) - 2) / 3
		return []byte(head + strings.TrimSuffix(strings.Repeat("{},", n), ",") + "]}")
	}
	inside := func() []byte {
		var b strings.Builder
		b.WriteString(`{"resourceType":"Bundle","type":"collection","identifier":{"value":"x"},"entry":[`)
		for i := range 980 {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`{"fullUrl":"urn:uuid:` + strconv.Itoa(i) + `","resource":{"resourceType":"Basic","code":{"coding":[` +
				strings.TrimSuffix(strings.Repeat(`{"code":"a"},`, 20), ",") + `]}}}`)
		}
		b.WriteString("]}")
		return []byte(b.String())
	}
	attack := empty(2_900_000)
	cases := []struct {
		name     string
		body     []byte
		parallel int
		inWork   int // bodies Priora works on at once
	}{
		{"2.9 MiB of empty entries", attack, 1, 1},
		{"2.9 MiB of empty entries, 8 at once", attack, 8, 4},
		{"10 MiB of empty entries", empty(10<<20 - 1024), 1, 1},
		{"just inside the JSON limits", inside(), 1, 0},
	}
	peak := base
	for _, tc := range cases {
		var wg sync.WaitGroup
		statuses := make([]int, tc.parallel)
		for i := range tc.parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, body, err := post(client, url, tc.body)
				if err != nil {
					t.Errorf("%s: %v", tc.name, err)
				}
				if st/100 != 4 && st != http.StatusServiceUnavailable {
					t.Errorf("%s: status %d, want a 4xx or 503: %s", tc.name, st, snip(body))
				}
				statuses[i] = st
			}()
		}
		wg.Wait()
		now := peakRSS(t, pid)
		growth := now - peak
		if now < peak {
			growth = 0
		}
		bound := 10 * int64(len(tc.body)) * int64(tc.inWork)
		t.Logf("%s (%.2f MiB body, statuses %v): peak RSS %.1f MiB, growth %.1f MiB (bound %.1f MiB)",
			tc.name, mib(int64(len(tc.body))), statuses, mib(now), mib(growth), mib(bound))
		if tc.inWork > 0 && now-base > bound {
			t.Errorf("%s: peak RSS grew %.1f MiB over the baseline, more than 10× the bodies in work (%.1f MiB)", tc.name, mib(now-base), mib(bound))
		}
		if now > peak {
			peak = now
		}
	}
}

// peakRSS is VmHWM of pid in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skip("no /proc:", err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(v)), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
