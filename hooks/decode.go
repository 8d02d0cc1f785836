package hooks

import (
	"bytes"
	"encoding/json"
	"strings"
)

// decodeRequest reads a hook call. Most of a call's bytes are prefetch
// resources that Priora indexes but seldom decodes, so instead of
// json.Unmarshal (which validates the whole body, then copies every
// prefetch value while skipping through it again) it validates the body
// once and splits it with the scanner of prefetch.go: the prefetch values
// and draft orders stay slices of body. Only the small members are decoded
// with encoding/json.
//
// Anything unusual — a syntax or type error, a member name in another
// case or with escapes, a repeated member — is left to json.Unmarshal, so
// that the result and the error messages are exactly what it gives.
func decodeRequest(body []byte, r *Request) error {
	if !validJSON(body) || !fastDecode(body, r) {
		*r = Request{}
		return json.Unmarshal(body, r)
	}
	return nil
}

// requestMembers are the members of Request, as json.Unmarshal matches them
// (case-insensitively).
var requestMembers = []string{"hook", "hookInstance", "fhirServer", "fhirAuthorization", "context", "prefetch", "extension"}

func fastDecode(body []byte, r *Request) bool {
	seen := map[string]bool{}
	ok := true
	err := eachMember(body, func(key string, val []byte) error {
		if seen[key] || strings.IndexByte(key, '\\') >= 0 {
			ok = false
			return errShape
		}
		seen[key] = true
		var err error
		switch key {
		case "hook":
			err = json.Unmarshal(val, &r.Hook)
		case "hookInstance":
			err = json.Unmarshal(val, &r.HookInstance)
		case "fhirServer":
			err = json.Unmarshal(val, &r.FHIRServer)
		case "fhirAuthorization":
			err = json.Unmarshal(val, &r.FHIRAuthorization)
		case "context":
			err = json.Unmarshal(val, &r.Context)
		case "prefetch":
			r.Prefetch, ok = rawMembers(val)
		case "extension":
			r.Extension, ok = rawMembers(val)
		default:
			for _, m := range requestMembers {
				if strings.EqualFold(key, m) {
					ok = false
				}
			}
		}
		if err != nil || !ok {
			ok = false
			return errShape
		}
		return nil
	})
	return err == nil && ok
}

// rawMembers is json.Unmarshal into a map[string]json.RawMessage without
// the copies; val is valid JSON. ok is false for anything but an object or
// null, and for keys with escapes or repeated keys.
func rawMembers(val []byte) (map[string]json.RawMessage, bool) {
	if bytes.Equal(val, []byte("null")) {
		return nil, true
	}
	m := map[string]json.RawMessage{}
	err := eachMember(val, func(key string, v []byte) error {
		if _, dup := m[key]; dup || strings.IndexByte(key, '\\') >= 0 {
			return errShape
		}
		m[key] = v
		return nil
	})
	return m, err == nil
}
