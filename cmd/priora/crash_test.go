package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/priora/priora/bench"
)

// TestCrashSafety runs Priora as a child process on the embedded store,
// sends it 500 concurrent $submits, kills it with SIGKILL while they are
// in flight, and restarts it on the same data directory. Then every
// submission it acknowledged (2xx) must be found by $inquire (member id +
// provider NPI), and every submission — acknowledged or cut off — retried
// with the same body must answer 200 and leave exactly one chain for its
// patient; an acknowledged one must answer the very response it got
// before.
func TestCrashSafety(t *testing.T) {
	const (
		total   = 500
		killAt  = 60 // acknowledgements before the kill
		workers = 8  // for the checks after the restart
	)
	deadline := time.Now().Add(300 * time.Second) // a guard against a hang, not a speed target: a busy machine needs minutes to build and check
	bin := buildPriora(t)
	data := t.TempDir()
	addr := freeAddr(t)
	base := "http://" + addr
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: total}}

	var templates []*bench.Template
	for _, f := range []string{"pas/kit-approval.json", "pas/kit-denial.json", "pas/kit-modify.json"} {
		raw, err := bench.Fixture(f)
		if err != nil {
			t.Fatal(err)
		}
		tpl, err := bench.SubmitTemplate(f, raw)
		if err != nil {
			t.Fatal(err)
		}
		templates = append(templates, tpl)
	}
	inqRaw, err := os.ReadFile("../../testdata/pas/kit/must_support_pa_inquire_request_payload.1.json")
	if err != nil {
		t.Fatal(err)
	}
	inquiry, err := bench.SubmitTemplate("inquiry", inqRaw)
	if err != nil {
		t.Fatal(err)
	}
	run := bench.RunID()
	type submission struct {
		token  string
		body   []byte
		status int
		answer []byte
	}
	subs := make([]*submission, total)
	for i := range subs {
		tok := fmt.Sprintf("crash-%s-%d", run, i)
		subs[i] = &submission{token: tok, body: templates[i%len(templates)].Render(tok)}
	}

	// Durability, not load shedding, is tested here: each of the 500 has
	// its own connection (PRIORA_MAX_CONNS_PER_IP); they wait in the
	// $submit queue, and the kill comes before any has waited its 10 s.
	srv := startChild(t, bin, addr, data, deadline, "PRIORA_MAX_CONNS_PER_IP=0")
	var acked atomic.Int64
	killed := make(chan struct{})
	var kill sync.Once
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, answer, err := post(client, base+"/fhir/Claim/$submit", s.body)
			if err != nil {
				return // cut off by the kill: unknown outcome
			}
			s.status, s.answer = status, answer
			if status/100 == 2 && acked.Add(1) == killAt {
				kill.Do(func() { srv.kill(t); close(killed) })
			}
		}()
	}
	wg.Wait()
	kill.Do(func() { srv.kill(t); close(killed) }) // all answered before killAt: still a crash
	<-killed
	var ok, failed, cut int
	for _, s := range subs {
		switch {
		case s.status/100 == 2:
			ok++
		case s.status != 0:
			failed++
		default:
			cut++
		}
	}
	t.Logf("before the kill: %d acknowledged, %d refused, %d cut off", ok, failed, cut)
	if ok < killAt || cut == 0 {
		t.Fatalf("the kill did not land mid-load: %d acknowledged, %d cut off", ok, cut)
	}
	for _, s := range subs {
		if s.status != 0 && s.status/100 != 2 {
			t.Errorf("%s: status %d before the crash: %s", s.token, s.status, snip(s.answer))
		}
	}

	srv = startChild(t, bin, addr, data, deadline)
	defer srv.stop(t)
	authID := regexp.MustCompile(`PA[0-9a-f]{20}`)
	var next atomic.Int64
	var mu sync.Mutex
	failures := 0
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if failures++; failures <= 20 {
			t.Errorf(format, args...)
		} else if failures == 21 {
			t.Errorf("(more failures not shown)")
		}
	}
	wg = sync.WaitGroup{}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= total || time.Now().After(deadline) {
					return
				}
				s := subs[i]
				if s.status/100 == 2 {
					// Acknowledged before the crash: $inquire finds it.
					want := authID.Find(s.answer)
					st, ans, err := post(client, base+"/fhir/Claim/$inquire", inquiry.Render(s.token))
					if err != nil || st != http.StatusOK || want == nil || !bytes.Contains(ans, want) {
						fail("%s: acknowledged as %s, but $inquire answers %d %v: %s", s.token, want, st, err, snip(ans))
					}
				}
				// The client's retry: the same body, no second chain.
				st, ans, err := post(client, base+"/fhir/Claim/$submit", s.body)
				if err != nil || st != http.StatusOK {
					fail("%s: retry answered %d %v: %s", s.token, st, err, snip(ans))
					continue
				}
				if s.status/100 == 2 && !bytes.Equal(ans, s.answer) {
					fail("%s: the retry's answer differs from the acknowledged one", s.token)
				}
				st, ans, err = post(client, base+"/fhir/Claim/$inquire", inquiry.Render(s.token))
				if n := countReturns(ans); err != nil || st != http.StatusOK || n != 1 {
					fail("%s: after the retry $inquire finds %d chains (status %d, %v), want exactly 1", s.token, n, st, err)
				}
			}
		}()
	}
	wg.Wait()
	if time.Now().After(deadline) {
		t.Fatalf("checks did not finish in time")
	}
}

func countReturns(body []byte) int {
	var p struct {
		Parameter []struct {
			Name string `json:"name"`
		} `json:"parameter"`
	}
	if json.Unmarshal(body, &p) != nil {
		return -1
	}
	n := 0
	for _, x := range p.Parameter {
		if x.Name == "return" {
			n++
		}
	}
	return n
}

func post(c *http.Client, url string, body []byte) (int, []byte, error) {
	return postAs(c, url, body, "application/fhir+json")
}

func postAs(c *http.Client, url string, body []byte, contentType string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

func snip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}
