package hooks

import (
	"bytes"
	"encoding/json"
	"errors"
)

// withExtensions returns the resource with its top-level extension array
// replaced by: its existing extensions minus those with url drop, plus add.
// Every other byte of the resource is kept as sent, so the update changes
// nothing but the coverage-information extensions (CRD resp-37). raw must be
// valid JSON (it comes from a validated request or EHR answer); it is
// scanned, not decoded.
func withExtensions(raw json.RawMessage, drop string, add []json.RawMessage) (json.RawMessage, error) {
	open := skipSpace(raw, 0)
	if open >= len(raw) || raw[open] != '{' {
		return nil, errors.New("resource is not a JSON object")
	}
	open++ // just after '{'
	start, end := -1, -1
	var existing [][]byte
	err := eachMember(raw, func(key string, val []byte) error {
		if key != "extension" {
			return nil
		}
		at := cap(raw) - cap(val) // val is raw[at:end]
		end = at + len(val)
		// The replaced value starts just after the colon.
		start = bytes.LastIndexByte(raw[:at], ':') + 1
		existing = existing[:0]
		if string(val) == "null" {
			return nil
		}
		return eachElement(val, func(e []byte) error {
			existing = append(existing, e)
			return nil
		})
	})
	if err != nil {
		if start >= 0 {
			return nil, errors.New("extension is not an array")
		}
		return nil, errors.New("resource is not a JSON object")
	}
	var arr bytes.Buffer
	arr.WriteByte('[')
	n := 0
	for _, e := range existing {
		if extensionURL(e) == drop {
			continue
		}
		if n > 0 {
			arr.WriteByte(',')
		}
		arr.Write(e)
		n++
	}
	for _, e := range add {
		if n > 0 {
			arr.WriteByte(',')
		}
		arr.Write(e)
		n++
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

// extensionURL is the url of an extension object ("" when it has none).
func extensionURL(e []byte) string {
	var url string
	_ = eachMember(e, func(key string, val []byte) error {
		if key == "url" && len(val) > 0 && val[0] == '"' {
			if bytes.IndexByte(val, '\\') < 0 {
				url = string(val[1 : len(val)-1])
			} else {
				_ = unmarshal(val, &url)
			}
		}
		return nil
	})
	return url
}

// replaceMembers returns a copy of a JSON object with some top-level
// members set (a nil value removes the member). Key order is not kept; it
// is used for proposed resources, not for the coverage-information update.
func replaceMembers(raw json.RawMessage, set map[string]any) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := unmarshal(raw, &m); err != nil {
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
