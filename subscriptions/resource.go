package subscriptions

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/internal/outbound"
	"github.com/priora/priora/store"
)

// Canonical URLs this package speaks.
const (
	// Topic is the one topic Priora publishes: a PAS response changed.
	Topic = "http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic"

	backport          = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
	extFilterCriteria = backport + "backport-filter-criteria"
	extPayloadContent = backport + "backport-payload-content"
	extTimeout        = backport + "backport-timeout"
	extHeartbeat      = backport + "backport-heartbeat-period"
	profileStatus     = backport + "backport-subscription-status-r4"
	profileNote       = backport + "backport-subscription-notification-r4"
)

// Limits on what a client may configure.
const (
	maxHeaders   = 20
	maxHeaderLen = 4096
	maxFilters   = 100
	maxTimeout   = outbound.MaxTimeout
)

// limits is what parse checks a Subscription against besides its shape.
type limits struct {
	// timeout applies when the subscription sets no backport-timeout.
	timeout time.Duration
	// minHeartbeat is the shortest heartbeat period accepted.
	minHeartbeat time.Duration
	// policy decides which endpoints may be used.
	policy *outbound.Policy
}

// extension is the part of an R4 extension the backport uses.
type extension struct {
	URL              string  `json:"url"`
	ValueString      *string `json:"valueString,omitempty"`
	ValueCode        *string `json:"valueCode,omitempty"`
	ValueUnsignedInt *int    `json:"valueUnsignedInt,omitempty"`
	ValuePositiveInt *int    `json:"valuePositiveInt,omitempty"`
}

type element struct {
	Extension []extension `json:"extension,omitempty"`
}

// wireSubscription is what Priora reads of an R4 Subscription.
type wireSubscription struct {
	ResourceType string   `json:"resourceType"`
	ID           string   `json:"id"`
	Status       string   `json:"status"`
	Criteria     string   `json:"criteria"`
	CriteriaExt  *element `json:"_criteria"`
	Channel      struct {
		Extension  []extension `json:"extension"`
		Type       string      `json:"type"`
		Endpoint   string      `json:"endpoint"`
		Payload    string      `json:"payload"`
		PayloadExt *element    `json:"_payload"`
		Header     []string    `json:"header"`
	} `json:"channel"`
}

// channel is a checked Subscription: what delivery needs.
type channel struct {
	id        string // the resource's id, if any
	status    string // the status the client asked for
	endpoint  string
	payload   string
	headers   []string
	filters   []string
	heartbeat time.Duration
	timeout   time.Duration
}

// parse reads a Subscription that fhir.Parser has found valid R4 and checks
// it against what Priora supports: the PAS topic, a rest-hook channel to an
// endpoint the outbound policy allows, full-resource JSON payloads, an
// org-identifier filter, channel headers that cannot steer the request,
// and a heartbeat period of at least lim.minHeartbeat. Everything else is
// an Unprocessable error listing every finding. A past end and any
// meta.profile are accepted: Priora does not expire subscriptions
// (Inferno's sample ends in 2020).
func parse(raw []byte, lim limits) (*channel, error) {
	var w wireSubscription
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, fhir.InvalidAt("structure", "Subscription", "the body is not a Subscription")
	}
	c := &channel{id: w.ID, status: w.Status, payload: w.Channel.Payload, timeout: min(lim.timeout, maxTimeout)}
	var issues []fhir.Issue
	bad := func(code, expr, format string, args ...any) {
		issues = append(issues, fhir.Issue{Severity: "error", Code: code, Expression: expr, Diagnostics: fmt.Sprintf(format, args...)})
	}

	if w.Criteria != Topic {
		bad("not-supported", "Subscription.criteria", "criteria must be the PAS topic %s", Topic)
	}
	var filters []string
	if w.CriteriaExt != nil {
		for _, e := range w.CriteriaExt.Extension {
			if e.URL != extFilterCriteria {
				continue
			}
			if e.ValueString == nil {
				bad("required", "Subscription.criteria.extension", "a filter criteria extension needs a valueString")
				continue
			}
			vals, err := parseFilter(*e.ValueString)
			if err != nil {
				bad("not-supported", "Subscription.criteria.extension", "%v", err)
				continue
			}
			filters = append(filters, vals...)
		}
	}
	c.filters = uniq(filters)
	switch {
	case len(c.filters) == 0 && len(issues) == 0:
		bad("required", "Subscription.criteria.extension", "a PAS subscription needs a filter criteria extension org-identifier=<sending system identifier>")
	case len(c.filters) > maxFilters:
		bad("too-costly", "Subscription.criteria.extension", "at most %d org-identifier values are allowed", maxFilters)
	}

	if w.Channel.Type != "rest-hook" {
		bad("not-supported", "Subscription.channel.type", "channel type %q is not supported; PAS subscriptions use rest-hook", w.Channel.Type)
	}
	if u, err := url.Parse(w.Channel.Endpoint); w.Channel.Endpoint == "" || err != nil {
		bad("value", "Subscription.channel.endpoint", "channel.endpoint must be an absolute https URL")
	} else if err := lim.policy.CheckURL(w.Channel.Endpoint); err != nil {
		bad("value", "Subscription.channel.endpoint", "channel.endpoint %v", err)
	} else {
		c.endpoint = u.String()
	}
	if mt, _, err := mime.ParseMediaType(w.Channel.Payload); err != nil || (mt != "application/fhir+json" && mt != "application/json") {
		bad("not-supported", "Subscription.channel.payload", "channel.payload must be application/fhir+json")
	}
	content := ""
	if w.Channel.PayloadExt != nil {
		for _, e := range w.Channel.PayloadExt.Extension {
			if e.URL == extPayloadContent && e.ValueCode != nil {
				content = *e.ValueCode
			}
		}
	}
	if content != "full-resource" {
		bad("not-supported", "Subscription.channel.payload.extension", "PAS subscriptions must ask for full-resource content (backport-payload-content), not %q", content)
	}
	if len(w.Channel.Header) > maxHeaders {
		bad("too-costly", "Subscription.channel.header", "at most %d headers are allowed", maxHeaders)
	}
	for i, h := range w.Channel.Header {
		if err := checkHeader(h); err != nil {
			bad("value", fmt.Sprintf("Subscription.channel.header[%d]", i), "%v", err)
		}
	}
	c.headers = w.Channel.Header
	for _, e := range w.Channel.Extension {
		switch e.URL {
		case extTimeout:
			if e.ValueUnsignedInt != nil && *e.ValueUnsignedInt > 0 {
				c.timeout = min(time.Duration(*e.ValueUnsignedInt)*time.Second, maxTimeout)
			}
		case extHeartbeat:
			if e.ValueUnsignedInt != nil && *e.ValueUnsignedInt > 0 {
				c.heartbeat = time.Duration(*e.ValueUnsignedInt) * time.Second
			}
		}
	}
	if c.heartbeat > 0 && c.heartbeat < lim.minHeartbeat {
		bad("value", "Subscription.channel.extension", "the heartbeat period must be at least %d seconds", int(lim.minHeartbeat/time.Second))
	}
	if len(issues) > 0 {
		return nil, &fhir.Error{Kind: fhir.Unprocessable, Message: issues[0].Diagnostics, Issues: issues}
	}
	return c, nil
}

// parseFilter reads one filter criteria string: org-identifier=a,b (also
// spelled orgIdentifier, the name the topic declares), optionally after a
// resource type and "?", several joined with "&".
func parseFilter(s string) ([]string, error) {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[i+1:]
	}
	var out []string
	for _, part := range strings.Split(s, "&") {
		name, vals, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if n, _, found := strings.Cut(name, ":"); found {
			name = n // the topic's only comparator is eq
		}
		norm := strings.ToLower(strings.ReplaceAll(name, "-", ""))
		if !ok || norm != "orgidentifier" {
			return nil, fmt.Errorf("filter %q is not supported; use org-identifier=<sending system identifier>", part)
		}
		for _, v := range strings.Split(vals, ",") {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("filter %q names no org-identifier value", s)
	}
	return out, nil
}

// reservedHeaders may not be set by a subscription: those Priora sets, the
// hop-by-hop ones (RFC 9110 7.6.1), and those that would steer the
// receiving side or what sits in front of it — cookies, the Host, proxy
// and forwarding headers (a receiver behind a proxy would take the
// client's word for the caller's address), method overrides.
var reservedHeaders = map[string]bool{
	"Content-Type": true, "Content-Length": true, "Content-Encoding": true, "Host": true,
	"Transfer-Encoding": true, "Connection": true, "Keep-Alive": true, "Te": true, "Trailer": true,
	"Upgrade": true, "Expect": true, "Proxy-Connection": true,
	"Cookie": true, "Cookie2": true, "Set-Cookie": true,
	"Forwarded": true, "Via": true, "X-Real-Ip": true, "X-Client-Ip": true, "True-Client-Ip": true,
	"Cf-Connecting-Ip": true, "Fastly-Client-Ip": true, "X-Cluster-Client-Ip": true,
	"X-Original-Url": true, "X-Rewrite-Url": true, "X-Http-Method-Override": true,
	"X-Http-Method": true, "X-Method-Override": true, "Max-Forwards": true, "Range": true,
}

// reservedHeader says whether a (canonical) header name may not be set by
// a subscription.
func reservedHeader(name string) bool {
	return reservedHeaders[name] || strings.HasPrefix(name, "X-Forwarded-") || strings.HasPrefix(name, "Proxy-") ||
		strings.HasPrefix(name, "Sec-")
}

// checkHeader checks a channel.header entry "Name: value".
func checkHeader(h string) error {
	name, value, ok := strings.Cut(h, ":")
	if !ok || len(h) > maxHeaderLen {
		return fmt.Errorf("a channel header must read \"Name: value\"")
	}
	name = strings.TrimSpace(name)
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r) }) {
		return fmt.Errorf("a channel header needs a valid name")
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return fmt.Errorf("a channel header value may not contain line breaks")
	}
	if key := textproto.CanonicalMIMEHeaderKey(name); reservedHeader(key) {
		return fmt.Errorf("header %s may not be set by a subscription (hop-by-hop, cookie, host, forwarding and proxy headers are refused; Content-Type follows channel.payload)", key)
	}
	return nil
}

// setHeaders adds the channel headers to an outgoing request, skipping
// any a subscription stored before a header was refused may still hold.
func setHeaders(h http.Header, headers []string) {
	for _, line := range headers {
		if checkHeader(line) != nil {
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		h.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
}

func uniq(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// render is the stored Subscription as FHIR JSON: the client's resource
// with Priora's id, status, error and meta, and its channel header values
// masked.
func render(sub *store.Subscription, status, errText string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(sub.Resource), &m); err != nil {
		return nil, fmt.Errorf("subscriptions: stored resource %s: %w", sub.ID, err)
	}
	meta := map[string]json.RawMessage{}
	if raw, ok := m["meta"]; ok {
		_ = json.Unmarshal(raw, &meta) // checked at intake
	}
	meta["versionId"] = jsonString(strconv.Itoa(sub.Version))
	meta["lastUpdated"] = jsonString(instant(sub.Updated))
	m["meta"] = mustJSON(meta)
	m["id"] = jsonString(sub.ID)
	m["status"] = jsonString(status)
	if raw, ok := m["channel"]; ok {
		var ch map[string]json.RawMessage
		if json.Unmarshal(raw, &ch) == nil && ch["header"] != nil {
			ch["header"] = mustJSON(maskHeaders(sub.Headers))
			m["channel"] = orderedJSON(ch)
		}
	}
	delete(m, "error")
	if errText != "" {
		m["error"] = jsonString(errText)
	}
	return orderedJSON(m, "resourceType", "id", "meta"), nil
}

// orderedJSON writes an object with the first keys in order and the rest
// sorted, so that resourceType comes first as FHIR readers expect.
func orderedJSON(m map[string]json.RawMessage, first ...string) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	put := func(k string) {
		v, ok := m[k]
		if !ok {
			return
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		b.Write(jsonString(k))
		b.WriteByte(':')
		b.Write(v)
	}
	done := map[string]bool{}
	for _, k := range first {
		put(k)
		done[k] = true
	}
	rest := make([]string, 0, len(m))
	for k := range m {
		if !done[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		put(k)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("subscriptions: marshal: %v", err)) // only plain values are passed
	}
	return b
}

// instant formats a time as a FHIR instant.
func instant(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// masked is what a read shows of a channel header value: the values are
// credentials more often than not (Authorization: Bearer …), and a read
// of the Subscription must not hand them out again.
const masked = "***"

// maskHeaders shows each channel header as "Name: ***".
func maskHeaders(headers []string) []string {
	out := make([]string, len(headers))
	for i, h := range headers {
		name, _, _ := strings.Cut(h, ":")
		out[i] = strings.TrimSpace(name) + ": " + masked
	}
	return out
}

// unmaskHeaders replaces each header sent with the masked value by the
// value stored under the same name. A masked header with no stored
// counterpart is an error: there is no value to keep.
func unmaskHeaders(sent, stored []string) ([]string, error) {
	out := make([]string, len(sent))
	for i, h := range sent {
		name, val, _ := strings.Cut(h, ":")
		out[i] = h
		if strings.TrimSpace(val) != masked {
			continue
		}
		found := false
		for _, st := range stored {
			if n, _, _ := strings.Cut(st, ":"); strings.EqualFold(strings.TrimSpace(n), strings.TrimSpace(name)) {
				out[i], found = st, true
				break
			}
		}
		if !found {
			return nil, fhir.InvalidAt("value", fmt.Sprintf("Subscription.channel.header[%d]", i),
				"channel.header %q has the masked value %s but no header of that name is stored; send the real value", strings.TrimSpace(name), masked)
		}
	}
	return out, nil
}
