package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// keyState is what the client said about one prefetch key.
type keyState int

const (
	keyAbsent   keyState = iota // not sent: the client did not fetch it
	keyNull                     // null: the client fetched it and there is no data
	keyProvided                 // a resource or a Bundle
	keyError                    // an OperationOutcome: the client's fetch failed
)

// data is everything known about the call's FHIR resources: what came in
// prefetch (under any key — clients may use their own key names, CRD
// found-30) and what was fetched from the EHR.
type data struct {
	keys map[string]keyState
	// byRef indexes resources by "Type/id".
	byRef map[string]json.RawMessage
	// keyed holds, per prefetch key, the resources it carried.
	keyed map[string][]json.RawMessage
	// fetched and fetchFailed count EHR queries.
	fetched, fetchFailed int
}

func newData() *data {
	return &data{keys: map[string]keyState{}, byRef: map[string]json.RawMessage{}, keyed: map[string][]json.RawMessage{}}
}

// loadPrefetch indexes the prefetch. A malformed value is treated as not
// provided, so that the service fetches it itself.
func (d *data) loadPrefetch(prefetch map[string]json.RawMessage) {
	for k, raw := range prefetch {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
			d.keys[k] = keyNull
			continue
		}
		h, ok := head(raw)
		if !ok || h.ResourceType == "" {
			continue
		}
		switch h.ResourceType {
		case "OperationOutcome":
			d.keys[k] = keyError
		case "Bundle":
			var b bundle
			if b.read(raw) != nil { // raw is valid JSON and stays ours: no check, no copy
				continue
			}
			d.keys[k] = keyProvided
			for _, e := range b.Entry {
				if h, ok := d.add(e.Resource); ok && h.ResourceType != "OperationOutcome" {
					d.keyed[k] = append(d.keyed[k], e.Resource)
				}
			}
		default:
			d.keys[k] = keyProvided
			if _, ok := d.add(raw); ok {
				d.keyed[k] = append(d.keyed[k], raw)
			}
		}
	}
}

// add indexes one resource by type and id.
func (d *data) add(raw json.RawMessage) (resourceHead, bool) {
	h, ok := head(raw)
	if !ok || h.ResourceType == "" {
		return h, false
	}
	if h.ID != "" {
		d.byRef[h.ResourceType+"/"+h.ID] = raw
	}
	return h, true
}

// lookup finds a resource by reference: "Type/id", or an absolute URL or
// versioned reference ending in Type/id[/_history/v].
func (d *data) lookup(ref string) (json.RawMessage, bool) {
	if ref == "" {
		return nil, false
	}
	key := relativeRef(ref)
	r, ok := d.byRef[key]
	return r, ok
}

// ofType returns every indexed resource of a type.
func (d *data) ofType(typ string) []json.RawMessage {
	var out []json.RawMessage
	prefix := typ + "/"
	for k, r := range d.byRef {
		if strings.HasPrefix(k, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// relativeRef reduces a reference to "Type/id".
func relativeRef(ref string) string {
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(strings.TrimRight(ref, "/"), "/")
	if len(parts) < 2 {
		return ref
	}
	return parts[len(parts)-2] + "/" + parts[len(parts)-1]
}

var fhirID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// splitRef splits "Type/id" into its parts; ok is false for anything else.
func splitRef(ref string) (typ, id string, ok bool) {
	typ, id, ok = strings.Cut(relativeRef(ref), "/")
	if !ok || typ == "" || typ[0] < 'A' || typ[0] > 'Z' || !fhirID.MatchString(id) {
		return "", "", false
	}
	return typ, id, true
}

// errNotFound is an EHR's 404/410 for a read: the resource does not exist.
var errNotFound = errors.New("not found on the EHR")

// ehr is a FHIR client for the EHR named in a hook call, using the access
// token the EHR lent (CDS Hooks: Authorization: Bearer on every call). The
// token goes to fhirServer's own origin only: paths are built from ids
// (never from references or links an answer carries), every request URL is
// checked to stay under the base, and redirects are not followed.
type ehr struct {
	client *http.Client
	base   string
	token  string
	max    int64
}

// get fetches a path under the FHIR base. A 404 or 410 is errNotFound; any
// other failure (network, timeout, 401, 5xx, not JSON) is an error that
// makes dependent coverage information indeterminate.
func (e *ehr) get(ctx context.Context, path string) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/"+path, nil)
	if err != nil {
		return nil, err
	}
	if !sameOrigin(req.URL, e.base) {
		return nil, fmt.Errorf("query %q leaves the EHR's FHIR base", path)
	}
	req.Header.Set("Accept", "application/fhir+json")
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, e.max+1))
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, errNotFound
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("EHR answered %d", resp.StatusCode)
	case int64(len(body)) > e.max:
		return nil, fmt.Errorf("EHR answer is larger than %d bytes", e.max)
	}
	var head resourceHead
	if err := unmarshal(body, &head); err != nil || head.ResourceType == "" {
		return nil, errors.New("EHR answer is not a FHIR resource")
	}
	if head.ResourceType == "OperationOutcome" {
		return nil, errors.New("EHR answered an OperationOutcome")
	}
	return body, nil
}

// sameOrigin says whether u is on base's scheme, host and port.
func sameOrigin(u *url.URL, base string) bool {
	b, err := url.Parse(base)
	return err == nil && strings.EqualFold(u.Scheme, b.Scheme) && strings.EqualFold(u.Host, b.Host) && u.User == nil
}

// query is one EHR fetch: a read ("Patient/123") or a search
// ("Coverage?patient=123&status=active").
type query struct {
	path string
	// result
	body json.RawMessage
	err  error
}

// fetchAll runs the queries in parallel and waits for all of them; ctx
// carries the deadline.
func (e *ehr) fetchAll(ctx context.Context, qs []*query) {
	var wg sync.WaitGroup
	for _, q := range qs {
		wg.Go(func() { q.body, q.err = e.get(ctx, q.path) })
	}
	wg.Wait()
}

// readPath is the path of a read of Type/id.
func readPath(typ, id string) string { return typ + "/" + url.PathEscape(id) }

// searchEntries returns the resources of a searchset Bundle (or the
// resource itself for a read), skipping OperationOutcome entries.
func searchEntries(body json.RawMessage) []json.RawMessage {
	var head resourceHead
	if unmarshal(body, &head) != nil {
		return nil
	}
	if head.ResourceType != "Bundle" {
		return []json.RawMessage{body}
	}
	var b bundle
	if unmarshal(body, &b) != nil {
		return nil
	}
	out := make([]json.RawMessage, 0, len(b.Entry))
	for _, e := range b.Entry {
		var h resourceHead
		if unmarshal(e.Resource, &h) == nil && h.ResourceType != "" && h.ResourceType != "OperationOutcome" {
			out = append(out, e.Resource)
		}
	}
	return out
}

// head reads a resource's top-level resourceType and id without decoding
// the rest. raw must be valid JSON (it comes from an already-parsed
// document); ok is false when raw is not an object. It is the hot path's
// replacement for a full json.Unmarshal of every prefetched resource.
func head(raw []byte) (h resourceHead, ok bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return h, false
	}
	i++
	for {
		i = skipSpace(raw, i)
		if i >= len(raw) || raw[i] == '}' {
			return h, true
		}
		if raw[i] == ',' {
			i++
			continue
		}
		if raw[i] != '"' {
			return h, false
		}
		kEnd := endOfString(raw, i)
		if kEnd < 0 {
			return h, false
		}
		key := raw[i+1 : kEnd-1]
		i = skipSpace(raw, kEnd)
		if i >= len(raw) || raw[i] != ':' {
			return h, false
		}
		i = skipSpace(raw, i+1)
		vEnd := endOfValue(raw, i)
		if vEnd < 0 {
			return h, false
		}
		if raw[i] == '"' && (string(key) == "resourceType" || string(key) == "id") {
			v := raw[i+1 : vEnd-1]
			var s string
			if bytes.IndexByte(v, '\\') >= 0 {
				if unmarshal(raw[i:vEnd], &s) != nil {
					return h, false
				}
			} else {
				s = string(v)
			}
			if key[0] == 'r' {
				h.ResourceType = s
			} else {
				h.ID = s
			}
			if h.ResourceType != "" && h.ID != "" {
				return h, true
			}
		}
		i = vEnd
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index just past the string starting at b[i].
// It jumps from quote to quote (bytes.IndexByte) and looks back over
// backslashes, rather than stepping through every byte of the string.
func endOfString(b []byte, i int) int {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1
		}
		j += k
		escaped := false
		for p := j - 1; p > i && b[p] == '\\'; p-- {
			escaped = !escaped
		}
		if !escaped {
			return j + 1
		}
		j++
	}
}

// endOfValue returns the index just past the JSON value starting at b[i].
func endOfValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return endOfString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			c := b[j]
			if !structural[c] {
				continue
			}
			switch c {
			case '"':
				j = endOfString(b, j) - 1
				if j < 0 {
					return -1
				}
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
		j++
	}
	return j
}

// structural marks the bytes endOfValue must look at inside a container.
var structural = [256]bool{'"': true, '{': true, '[': true, '}': true, ']': true}

// errShape is a JSON value of the wrong kind where a scanner expected an
// object or an array.
var errShape = errors.New("unexpected JSON shape")

// eachMember calls fn with each top-level member of a JSON object; raw must
// be valid JSON. Keys are returned raw (without unescaping), which is
// enough for the ASCII member names FHIR and CDS Hooks use.
func eachMember(raw []byte, fn func(key string, val []byte) error) error {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return errShape
	}
	i++
	for {
		i = skipSpace(raw, i)
		if i >= len(raw) {
			return errShape
		}
		switch raw[i] {
		case '}':
			return nil
		case ',':
			i++
			continue
		case '"':
		default:
			return errShape
		}
		kEnd := endOfString(raw, i)
		if kEnd < 0 {
			return errShape
		}
		key := raw[i+1 : kEnd-1]
		i = skipSpace(raw, kEnd)
		if i >= len(raw) || raw[i] != ':' {
			return errShape
		}
		i = skipSpace(raw, i+1)
		vEnd := endOfValue(raw, i)
		if vEnd < 0 {
			return errShape
		}
		if err := fn(string(key), raw[i:vEnd]); err != nil {
			return err
		}
		i = vEnd
	}
}

// eachElement calls fn with each element of a JSON array; raw must be valid.
func eachElement(raw []byte, fn func(val []byte) error) error {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return errShape
	}
	i++
	for {
		i = skipSpace(raw, i)
		if i >= len(raw) {
			return errShape
		}
		switch raw[i] {
		case ']':
			return nil
		case ',':
			i++
			continue
		}
		vEnd := endOfValue(raw, i)
		if vEnd < 0 {
			return errShape
		}
		if err := fn(raw[i:vEnd]); err != nil {
			return err
		}
		i = vEnd
	}
}

// UnmarshalJSON reads a Bundle's type and entries with the scanner above:
// the entries' resources stay raw and are not decoded twice.
func (b *bundle) UnmarshalJSON(raw []byte) error {
	if string(bytes.TrimSpace(raw)) == "null" {
		return nil
	}
	return b.read(bytes.Clone(raw)) // the decoder's buffer is not ours to keep
}

// read is UnmarshalJSON on bytes the bundle may keep referring to.
func (b *bundle) read(raw []byte) error {
	*b = bundle{}
	err := eachMember(raw, func(key string, val []byte) error {
		switch key {
		case "resourceType", "type":
			var s string
			if unmarshal(val, &s) != nil {
				return errShape
			}
			if key == "type" {
				b.Type = s
			} else {
				b.ResourceType = s
			}
		case "entry":
			if string(val) == "null" {
				return nil
			}
			return eachElement(val, func(ev []byte) error {
				var e bundleEntry
				err := eachMember(ev, func(k string, v []byte) error {
					switch k {
					case "resource":
						e.Resource = v
					case "fullUrl":
						_ = unmarshal(v, &e.FullURL)
					}
					return nil
				})
				if err != nil {
					return err
				}
				b.Entry = append(b.Entry, e)
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return errors.New("a Bundle must be a JSON object whose entry is an array of objects")
	}
	return nil
}
