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
		return unmarshal(body, r)
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
			err = unmarshal(val, &r.Hook)
		case "hookInstance":
			err = unmarshal(val, &r.HookInstance)
		case "fhirServer":
			err = unmarshal(val, &r.FHIRServer)
		case "fhirAuthorization":
			err = unmarshal(val, &r.FHIRAuthorization)
		case "context":
			r.Context, ok = fastContext(val)
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

// contextMembers are the members of hookContext, as json.Unmarshal matches
// them.
var contextMembers = []string{"userId", "patientId", "encounterId", "selections", "draftOrders", "appointments",
	"dispatchedOrders", "order", "performer", "fulfillmentTasks", "fulfillment-tasks", "task"}

// fastContext decodes a hook context like json.Unmarshal, with its Bundles
// read in place (bundle.read). ok is false where json.Unmarshal must
// decide (and word the error).
func fastContext(val []byte) (*hookContext, bool) {
	if bytes.Equal(val, []byte("null")) {
		return nil, true
	}
	hc := &hookContext{}
	seen := map[string]bool{}
	ok := true
	err := eachMember(val, func(key string, v []byte) error {
		if seen[key] || strings.IndexByte(key, '\\') >= 0 {
			return errShape
		}
		seen[key] = true
		var err error
		switch key {
		case "userId":
			err = unmarshal(v, &hc.UserID)
		case "patientId":
			err = unmarshal(v, &hc.PatientID)
		case "encounterId":
			err = unmarshal(v, &hc.EncounterID)
		case "order":
			err = unmarshal(v, &hc.Order)
		case "selections":
			err = unmarshal(v, &hc.Selections)
		case "dispatchedOrders":
			err = unmarshal(v, &hc.DispatchedOrders)
		case "draftOrders":
			hc.DraftOrders, err = readBundle(v)
		case "appointments":
			hc.Appointments, err = readBundle(v)
		case "performer":
			hc.Performer = v
		case "task":
			hc.Task = v
		case "fulfillmentTasks":
			hc.FulfillmentTasks, err = rawElements(v)
		case "fulfillment-tasks":
			hc.KebabTasks, err = rawElements(v)
		default:
			for _, m := range contextMembers {
				if strings.EqualFold(key, m) {
					return errShape
				}
			}
		}
		return err
	})
	if err != nil {
		ok = false
	}
	return hc, ok
}

// readBundle is json.Unmarshal into a *bundle, in place.
func readBundle(v []byte) (*bundle, error) {
	if bytes.Equal(v, []byte("null")) {
		return nil, nil
	}
	b := &bundle{}
	if err := b.read(v); err != nil {
		return nil, err
	}
	return b, nil
}

// rawElements is json.Unmarshal into a []json.RawMessage, in place.
func rawElements(v []byte) ([]json.RawMessage, error) {
	if bytes.Equal(v, []byte("null")) {
		return nil, nil
	}
	var out []json.RawMessage
	err := eachElement(v, func(e []byte) error {
		out = append(out, e)
		return nil
	})
	return out, err
}
