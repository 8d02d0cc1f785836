package hooks

import (
	"bytes"
	"encoding/json"
	"errors"
)

// withExtensions returns the resource with its top-level extension array
// replaced by: its existing extensions minus those with url drop, plus add.
// Every other byte of the resource is kept as sent, so the update changes
// nothing but the coverage-information extensions (CRD resp-37).
func withExtensions(raw json.RawMessage, drop string, add []json.RawMessage) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("resource is not a JSON object")
	}
	open := int(dec.InputOffset()) // just after '{'
	start, end := -1, -1
	var existing []json.RawMessage
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := t.(string)
		keyEnd := int(dec.InputOffset())
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if key != "extension" {
			continue
		}
		end = int(dec.InputOffset())
		// The value starts after the colon that follows the key.
		colon := bytes.IndexByte(raw[keyEnd:end], ':')
		if colon < 0 {
			return nil, errors.New("malformed extension member")
		}
		start = keyEnd + colon + 1
		if err := json.Unmarshal(v, &existing); err != nil {
			return nil, errors.New("extension is not an array")
		}
	}
	kept := existing[:0]
	for _, e := range existing {
		var h struct {
			URL string `json:"url"`
		}
		if json.Unmarshal(e, &h) == nil && h.URL == drop {
			continue
		}
		kept = append(kept, e)
	}
	var arr bytes.Buffer
	arr.WriteByte('[')
	for i, e := range append(kept, add...) {
		if i > 0 {
			arr.WriteByte(',')
		}
		arr.Write(e)
	}
	arr.WriteByte(']')

	out := make([]byte, 0, len(raw)+arr.Len()+16)
	if start >= 0 {
		out = append(out, raw[:start]...)
		out = append(out, arr.Bytes()...)
		out = append(out, raw[end:]...)
		return out, nil
	}
	// No extension member: add one right after resourceType's opening brace.
	out = append(out, raw[:open]...)
	out = append(out, `"extension":`...)
	out = append(out, arr.Bytes()...)
	if rest := bytes.TrimLeft(raw[open:], " \t\r\n"); len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	out = append(out, raw[open:]...)
	return out, nil
}

// replaceMembers returns a copy of a JSON object with some top-level
// members set (a nil value removes the member). Key order is not kept; it
// is used for proposed resources, not for the coverage-information update.
func replaceMembers(raw json.RawMessage, set map[string]any) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	for k, v := range set {
		if v == nil {
			delete(m, k)
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		m[k] = b
	}
	return json.Marshal(m)
}
