package bench

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Fixtures are the request bodies the load tool sends: PAS request Bundles
// from the PAS IG and its test kit (pas/), and the CRD IG's order-sign call
// with its full standard prefetch (crd/). See fixtures/README.md.
//
//go:embed fixtures
var fixtures embed.FS

// marker stands for the fresh token in a template. It is chosen so that
// it never occurs in a fixture and survives JSON encoding unchanged.
const marker = "PRIORALOADTOKEN"

// Template is a request body with the places that must differ between
// requests cut out: Render fills them with a token, so that each request
// is new to the server (a new Bundle.identifier, Claim identifier,
// patient and member ids; a new hookInstance) while costing the load tool
// only a concatenation.
type Template struct {
	Name  string
	parts [][]byte
	size  int
}

// Render returns the body for token (ASCII letters, digits and '-').
func (t *Template) Render(token string) []byte {
	out := make([]byte, 0, t.size+len(t.parts)*len(token))
	for i, p := range t.parts {
		if i > 0 {
			out = append(out, token...)
		}
		out = append(out, p...)
	}
	return out
}

// SubmitTemplate makes a template of a PAS request (or inquiry) Bundle.
// Rendered with the same token, a request Bundle and an inquiry Bundle
// name the same patient: the Bundle.identifier, every Claim.identifier,
// and the identifiers of the Coverage and the Patient (and
// Coverage.subscriberId) get "-<token>" appended.
func SubmitTemplate(name string, raw []byte) (*Template, error) {
	var b map[string]any
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if b["resourceType"] != "Bundle" {
		return nil, fmt.Errorf("%s: not a Bundle", name)
	}
	id, _ := b["identifier"].(map[string]any)
	if id == nil {
		id = map[string]any{"system": "urn:priora:load"}
		b["identifier"] = id
	}
	id["value"] = fmt.Sprint(id["value"]) + "-" + marker
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		res, _ := e.(map[string]any)["resource"].(map[string]any)
		switch res["resourceType"] {
		case "Claim", "Coverage", "Patient":
			ids, _ := res["identifier"].([]any)
			for _, x := range ids {
				if m, ok := x.(map[string]any); ok {
					if v, ok := m["value"].(string); ok {
						m["value"] = v + "-" + marker
					}
				}
			}
			if v, ok := res["subscriberId"].(string); ok {
				res["subscriberId"] = v + "-" + marker
			}
		}
	}
	return newTemplate(name, b)
}

// HookTemplate makes a template of a CDS Hooks call: a fresh hookInstance.
func HookTemplate(name string, raw []byte) (*Template, error) {
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if _, ok := h["hook"].(string); !ok {
		return nil, fmt.Errorf("%s: not a CDS Hooks request", name)
	}
	h["hookInstance"] = marker
	return newTemplate(name, h)
}

func newTemplate(name string, v any) (*Template, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	parts := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte(marker))
	if len(parts) < 2 {
		return nil, fmt.Errorf("%s: nothing to vary", name)
	}
	return &Template{Name: name, parts: parts, size: buf.Len()}, nil
}

// Fixture returns an embedded fixture by path, such as
// "pas/kit-approval.json".
func Fixture(name string) ([]byte, error) { return fixtures.ReadFile(path.Join("fixtures", name)) }

// fixtureTemplates loads every fixture under dir as a template.
func fixtureTemplates(dir string, mk func(string, []byte) (*Template, error)) ([]*Template, error) {
	names, err := fs.Glob(fixtures, path.Join("fixtures", dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []*Template
	for _, n := range names {
		raw, err := fixtures.ReadFile(n)
		if err != nil {
			return nil, err
		}
		t, err := mk(strings.TrimPrefix(n, "fixtures/"), raw)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no fixtures under %s", dir)
	}
	return out, nil
}

// SubmitTemplates are the PAS request Bundles the load tool varies over.
func SubmitTemplates() ([]*Template, error) { return fixtureTemplates("pas", SubmitTemplate) }

// HookTemplates are the order-sign calls (full prefetch).
func HookTemplates() ([]*Template, error) { return fixtureTemplates("crd", HookTemplate) }

// RunID is a short random prefix that keeps the tokens of two runs apart.
func RunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
