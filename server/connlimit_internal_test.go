package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// refusals counts the refused connections by how they were refused.
type refusals struct{ answered, closed atomic.Int64 }

func (r *refusals) count(answered bool) {
	if answered {
		r.answered.Add(1)
	} else {
		r.closed.Add(1)
	}
}

// capped is a listener capped at one connection per address, with an
// accept loop that hands accepted connections to the test.
func capped(t *testing.T, headWait, linger time.Duration, maxRefusing int) (*limitListener, chan net.Conn, *refusals) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &refusals{}
	l := LimitListener(ln, 1, nil, r.count).(*limitListener)
	l.headWait, l.linger, l.maxRefusing = headWait, linger, maxRefusing
	return l, acceptLoop(t, l), r
}

// acceptLoop accepts on l until it is closed (at the test's end) and hands
// the accepted connections to the test.
func acceptLoop(t *testing.T, l net.Listener) chan net.Conn {
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() { l.Close() })
	return accepted
}

func dial(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// waitDone fails the test unless the listener's refusals all end within
// 30 s.
func waitDone(t *testing.T, l *limitListener) {
	t.Helper()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("refusals still running after 30 s")
	}
}

// TestRefusalsBounded: the refusals under way are bounded (beyond the
// bound an over-cap connection is closed at once, unanswered), they take
// no slot, and closing the listener ends them all and waits for them.
func TestRefusalsBounded(t *testing.T) {
	l, accepted, counts := capped(t, time.Minute, time.Minute, 3)
	held := dial(t, l)
	<-accepted
	var refused []net.Conn
	for range 3 { // they send nothing: each waits for its request line
		refused = append(refused, dial(t, l))
	}
	extra := dial(t, l)
	if n, err := extra.Read(make([]byte, 1)); n != 0 || (!errors.Is(err, io.EOF) && !strings.Contains(fmt.Sprint(err), "reset")) {
		t.Fatalf("connection over the cap beyond the refusal bound: %d bytes, %v; want it closed at once", n, err)
	}
	l.mu.Lock()
	refusing, open := len(l.refusing), l.open[held.LocalAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()]
	l.mu.Unlock()
	if refusing != 3 || open != 1 {
		t.Fatalf("refusing %d, open %d; want 3 refusals under way and the one slot", refusing, open)
	}
	// One sends its request line: it is answered in its endpoint's format.
	fmt.Fprint(refused[0], "POST /cds-services/order-sign-crd HTTP/1.1\r\nHost: x\r\n")
	br := bufio.NewReader(refused[0])
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(string(b), `{"error":`) {
		t.Errorf("CDS Hooks request over the cap: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("after the answer: %v, want EOF (the server half-closed)", err)
	}
	// Closing the listener ends the refusals still waiting (a minute
	// each) and waits for their goroutines.
	l.Close()
	waitDone(t, l)
	for i, c := range refused {
		if _, err := io.Copy(io.Discard, c); err != nil && !strings.Contains(err.Error(), "reset") {
			t.Errorf("refused connection %d after Close: %v", i, err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.refusing) != 0 {
		t.Errorf("%d refusals left after Close", len(l.refusing))
	}
	// Counted: one answered; the one beyond the bound and the two cut
	// short by Close closed unanswered.
	if a, c := counts.answered.Load(), counts.closed.Load(); a != 1 || c != 3 {
		t.Errorf("counted %d answered, %d closed; want 1 and 3", a, c)
	}
}

// TestRefusalEndsOnItsOwn: a client over the cap that sends nothing and
// never closes is answered (as FHIR) when its time for a request line is
// up and dropped when the linger is over: the refusal's goroutine ends by
// itself.
func TestRefusalEndsOnItsOwn(t *testing.T) {
	l, accepted, counts := capped(t, 50*time.Millisecond, 50*time.Millisecond, 3)
	dial(t, l)
	<-accepted
	silent := dial(t, l)
	resp, err := http.ReadResponse(bufio.NewReader(silent), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" || !resp.Close ||
		!strings.Contains(string(b), `"OperationOutcome"`) || !strings.Contains(string(b), "throttled") {
		t.Errorf("silent connection over the cap: %d Retry-After %q close %v %s", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close, b)
	}
	waitDone(t, l)
	if a, c := counts.answered.Load(), counts.closed.Load(); a != 1 || c != 0 {
		t.Errorf("counted %d answered, %d closed; want 1 and 0", a, c)
	}
}
