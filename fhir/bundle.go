package fhir

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Bundle is a decoded FHIR Bundle whose entries keep their raw JSON, so that
// resources can be echoed byte for byte and decoded only where needed.
type Bundle struct {
	ResourceType string       `json:"resourceType"`
	ID           string       `json:"id,omitempty"`
	Meta         *Meta        `json:"meta,omitempty"`
	Identifier   *Identifier  `json:"identifier,omitempty"`
	Type         string       `json:"type,omitempty"`
	Timestamp    string       `json:"timestamp,omitempty"`
	Total        *int         `json:"total,omitempty"`
	Link         []BundleLink `json:"link,omitempty"`
	Entry        []Entry      `json:"entry,omitempty"`
}

type BundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type Entry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   json.RawMessage `json:"search,omitempty"`
	Request  *EntryRequest   `json:"request,omitempty"`
	Response *EntryResponse  `json:"response,omitempty"`

	// Filled by Index.
	Type string `json:"-"`
	ID   string `json:"-"`
}

type EntryRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

type EntryResponse struct {
	Status       string `json:"status"`
	Location     string `json:"location,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
}

// DecodeBundle decodes raw as a Bundle and indexes its entries.
func DecodeBundle(raw []byte) (*Bundle, error) {
	return DecodeBundleWith(raw, json.Unmarshal)
}

// DecodeBundleWith is DecodeBundle reading raw and its entries through
// decode, which must act as json.Unmarshal does (a reader of an already
// decoded tree, say).
func DecodeBundleWith(raw []byte, decode func(data []byte, v any) error) (*Bundle, error) {
	var b Bundle
	if err := decode(raw, &b); err != nil {
		return nil, &Error{Kind: Invalid, Message: "invalid Bundle JSON", Err: err,
			Issues: []Issue{{Severity: "error", Code: "structure", Diagnostics: "invalid Bundle JSON: " + JSONProblem(err), Expression: "Bundle"}}}
	}
	for i := range b.Entry {
		e := &b.Entry[i]
		if len(e.Resource) == 0 {
			continue
		}
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if err := decode(e.Resource, &head); err == nil {
			e.Type, e.ID = head.ResourceType, head.ID
		}
	}
	return &b, nil
}

// Resolve finds the entry that reference ref, written inside the entry whose
// fullUrl is from, points to. It handles urn:uuid and absolute references
// (matched to fullUrl), relative Type/id references (resolved against the
// referring entry's base, then by type and id), and ignores version suffixes.
// It returns -1 when nothing matches.
func (b *Bundle) Resolve(ref, from string) int {
	ref = stripHistory(ref)
	if ref == "" || strings.HasPrefix(ref, "#") {
		return -1
	}
	for i, e := range b.Entry {
		if e.FullURL != "" && stripHistory(e.FullURL) == ref {
			return i
		}
	}
	typ, id, ok := splitRelative(ref)
	if !ok {
		return -1
	}
	if base := serviceBase(from); base != "" {
		abs := base + "/" + typ + "/" + id
		for i, e := range b.Entry {
			if stripHistory(e.FullURL) == abs {
				return i
			}
		}
	}
	found := -1
	for i, e := range b.Entry {
		if e.Type == typ && e.ID == id {
			if found >= 0 {
				return -1 // ambiguous
			}
			found = i
		}
	}
	return found
}

var relativeRef = regexp.MustCompile(`^([A-Z][A-Za-z]+)/([A-Za-z0-9\-\.]{1,64})$`)

func splitRelative(ref string) (typ, id string, ok bool) {
	m := relativeRef.FindStringSubmatch(ref)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// serviceBase is the FHIR service base of an absolute RESTful fullUrl
// (…/Type/id → …), or "" for urn: fullUrls.
func serviceBase(fullURL string) string {
	if !strings.HasPrefix(fullURL, "http://") && !strings.HasPrefix(fullURL, "https://") {
		return ""
	}
	u := stripHistory(fullURL)
	parts := strings.Split(u, "/")
	if len(parts) < 5 {
		return ""
	}
	return strings.Join(parts[:len(parts)-2], "/")
}

func stripHistory(s string) string {
	if i := strings.Index(s, "/_history/"); i >= 0 {
		return s[:i]
	}
	return s
}

var uuidRe = regexp.MustCompile(`^urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// CheckFullURL reports why fullUrl is neither an absolute RESTful URL nor a
// urn:uuid (PAS spec-16), or "" when it is fine.
func CheckFullURL(fullURL, typ, id string) string {
	switch {
	case fullURL == "":
		return "entry.fullUrl is required"
	case strings.HasPrefix(fullURL, "urn:uuid:"):
		if !uuidRe.MatchString(fullURL) {
			return fmt.Sprintf("fullUrl %q is not a valid urn:uuid", fullURL)
		}
		return ""
	case strings.HasPrefix(fullURL, "http://") || strings.HasPrefix(fullURL, "https://"):
		u, err := url.Parse(fullURL)
		if err != nil || u.Host == "" {
			return fmt.Sprintf("fullUrl %q is not an absolute URL", fullURL)
		}
		if typ != "" && id != "" && !strings.HasSuffix(stripHistory(fullURL), "/"+typ+"/"+id) {
			return fmt.Sprintf("fullUrl %q does not end with %s/%s", fullURL, typ, id)
		}
		return ""
	}
	return fmt.Sprintf("fullUrl %q must be an absolute URL or a urn:uuid", fullURL)
}

// References returns every Reference.reference in a resource's JSON with the
// FHIRPath of the element that holds it (relative to the resource), skipping
// contained resources' internal fragments.
func References(resource json.RawMessage) ([]Ref, error) {
	var v any
	if err := json.Unmarshal(resource, &v); err != nil {
		return nil, err
	}
	var out []Ref
	var path []byte
	walkRefs(v, &path, &out)
	return out, nil
}

// Ref is one reference found in a resource.
type Ref struct {
	Path  string // FHIRPath below the resource, e.g. ".item[0].extension[1].valueReference"
	Value string
}

// walkRefs appends the references below v; path is v's FHIRPath, one
// buffer extended and cut back while walking (a path string is made only
// for a reference found).
func walkRefs(v any, path *[]byte, out *[]Ref) {
	switch t := v.(type) {
	case map[string]any:
		if r, ok := t["reference"].(string); ok {
			*out = append(*out, Ref{Path: string(*path), Value: r})
		}
		n := len(*path)
		for k, child := range t {
			if k == "contained" || k == "reference" || !composite(child) {
				continue
			}
			*path = append(append(*path, '.'), k...)
			walkRefs(child, path, out)
			*path = (*path)[:n]
		}
	case []any:
		n := len(*path)
		for i, child := range t {
			if !composite(child) {
				continue
			}
			*path = append(strconv.AppendInt(append(*path, '['), int64(i), 10), ']')
			walkRefs(child, path, out)
			*path = (*path)[:n]
		}
	}
}

// composite reports whether a decoded JSON value is an object or array
// (only those can hold a reference).
func composite(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return true
	}
	return false
}
