package suite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// listener is the suite's own HTTP server, playing the EHR's side: it
// receives subscription notifications at /notify and serves a mock EHR
// FHIR API at /ehr for CDS Hooks services that query the EHR.
type listener struct {
	srv     *http.Server
	ln      net.Listener
	url     string // as the server under test reaches it
	secret  string // the bearer token the suite puts in channel.header
	ehr     *mockEHR
	mu      sync.Mutex
	notes   []*notification
	arrived chan struct{}
}

// notification is one POST the listener received at /notify.
type notification struct {
	At     time.Time
	Header http.Header
	Body   []byte
	Bundle map[string]any // nil when the body is not JSON
}

func startListener(addr, publicURL string) (*listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("notification listener: %w", err)
	}
	l := &listener{ln: ln, secret: newID(), arrived: make(chan struct{}, 1), ehr: newMockEHR()}
	l.url = strings.TrimRight(publicURL, "/")
	if l.url == "" {
		l.url = "http://" + ln.Addr().String()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /notify", l.notify)
	mux.Handle("/ehr/", http.StripPrefix("/ehr", l.ehr))
	l.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = l.srv.Serve(ln) }()
	return l, nil
}

func (l *listener) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = l.srv.Shutdown(ctx)
}

// notifyURL is the channel.endpoint the suite subscribes with.
func (l *listener) notifyURL() string { return l.url + "/notify" }

// ehrURL is the fhirServer the suite sends in CDS Hooks calls.
func (l *listener) ehrURL() string { return l.url + "/ehr" }

func (l *listener) notify(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n := &notification{At: time.Now(), Header: r.Header.Clone(), Body: b}
	var m map[string]any
	if json.Unmarshal(b, &m) == nil {
		n.Bundle = m
	}
	l.mu.Lock()
	l.notes = append(l.notes, n)
	l.mu.Unlock()
	select {
	case l.arrived <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusOK)
}

// received lists the notifications so far.
func (l *listener) received() []*notification {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*notification(nil), l.notes...)
}

var errTimeout = errors.New("timed out")

// wait returns the first notification (in arrival order) that match
// accepts, waiting up to timeout for one to arrive.
func (l *listener) wait(ctx context.Context, timeout time.Duration, match func(*notification) bool) (*notification, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, n := range l.received() {
			if match(n) {
				return n, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, errTimeout
		case <-l.arrived:
		case <-tick.C:
		}
	}
}

// status is the SubscriptionStatus of a notification Bundle (its first
// entry), flattened.
type subStatus struct {
	Type, Status, Topic, Subscription, EventsSince string
	Events                                         []statusEvent
	Raw                                            map[string]any
}

type statusEvent struct {
	Number, Timestamp, Focus string
}

func (n *notification) status() (subStatus, bool) {
	var s subStatus
	entries := arr(n.Bundle["entry"])
	if len(entries) == 0 {
		return s, false
	}
	p := obj(obj(entries[0])["resource"])
	if str(p, "resourceType") != "Parameters" {
		return s, false
	}
	s.Raw = p
	for _, pv := range arr(p["parameter"]) {
		pm := obj(pv)
		switch str(pm, "name") {
		case "type":
			s.Type = firstString(pm, "valueCode", "valueString")
		case "status":
			s.Status = firstString(pm, "valueCode", "valueString")
		case "topic":
			s.Topic = firstString(pm, "valueCanonical", "valueUri", "valueString")
		case "subscription":
			s.Subscription = str(obj(pm["valueReference"]), "reference")
		case "events-since-subscription-start":
			s.EventsSince = firstString(pm, "valueString", "valueInteger64", "valueInteger")
		case "notification-event":
			var ev statusEvent
			for _, part := range arr(pm["part"]) {
				pp := obj(part)
				switch str(pp, "name") {
				case "event-number":
					ev.Number = firstString(pp, "valueString", "valueInteger64", "valueInteger")
				case "timestamp":
					ev.Timestamp = firstString(pp, "valueInstant", "valueDateTime")
				case "focus":
					ev.Focus = str(obj(pp["valueReference"]), "reference")
				}
			}
			s.Events = append(s.Events, ev)
		}
	}
	return s, true
}

func firstString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		switch v := m[k].(type) {
		case string:
			return v
		case float64:
			return fmt.Sprint(int64(v))
		}
	}
	return ""
}

// mockEHR is a small FHIR server holding the EHR data CDS Hooks services
// may query (read by Type/id, search by patient/subject/_id): the
// resources of the suite's EHR data Bundle plus every resource the suite
// sends in a hook call. The access token "invalid" gets 500, as Inferno's
// mock EHR does for the technical-issues test.
type mockEHR struct {
	mu        sync.Mutex
	resources map[string]map[string]any // "Type/id"
	queries   int
}

func newMockEHR() *mockEHR { return &mockEHR{resources: map[string]map[string]any{}} }

// add stores a resource (a Bundle's entries one by one).
func (e *mockEHR) add(res map[string]any) {
	if res == nil {
		return
	}
	rt := str(res, "resourceType")
	if rt == "Bundle" {
		for _, en := range arr(res["entry"]) {
			e.add(obj(obj(en)["resource"]))
		}
		return
	}
	if rt == "" || str(res, "id") == "" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.resources[rt+"/"+str(res, "id")] = res
}

func (e *mockEHR) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/fhir+json")
	e.mu.Lock()
	e.queries++
	e.mu.Unlock()
	if tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); tok == "invalid" {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"mock EHR: the suite's technical-issues test fails every query"}]}`))
		return
	}
	p := strings.Trim(r.URL.Path, "/")
	if typ, id, ok := strings.Cut(p, "/"); ok {
		e.mu.Lock()
		res, found := e.resources[typ+"/"+id]
		e.mu.Unlock()
		if !found {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}`))
			return
		}
		_ = json.NewEncoder(w).Encode(res)
		return
	}
	_ = r.ParseForm()
	q := r.Form
	var entries []any
	e.mu.Lock()
	for k, res := range e.resources {
		if !strings.HasPrefix(k, p+"/") || !matches(res, q) {
			continue
		}
		entries = append(entries, map[string]any{"fullUrl": "urn:uuid:" + newUUID(), "resource": res, "search": map[string]any{"mode": "match"}})
	}
	e.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": orEmpty(entries)})
}

func orEmpty(a []any) []any {
	if a == nil {
		return []any{}
	}
	return a
}

// matches applies the few search parameters CRD services use: _id,
// patient / subject / beneficiary (a reference or a bare id) and status.
func matches(res map[string]any, q map[string][]string) bool {
	for name, vals := range q {
		if len(vals) == 0 || strings.HasPrefix(name, "_") && name != "_id" {
			continue
		}
		want := strings.Split(vals[0], ",")
		ok := false
		switch name {
		case "_id":
			ok = anyOf(want, str(res, "id"))
		case "patient", "subject", "beneficiary":
			for _, k := range []string{"patient", "subject", "beneficiary"} {
				ref := str(obj(res[k]), "reference")
				for _, w := range want {
					if ref != "" && (ref == w || strings.HasSuffix(ref, "/"+w)) {
						ok = true
					}
				}
			}
		case "status":
			ok = anyOf(want, str(res, "status"))
		default:
			ok = true
		}
		if !ok {
			return false
		}
	}
	return true
}

func anyOf(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
