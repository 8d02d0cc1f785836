package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
)

// maxNumericDate is 9999-12-31T23:59:59Z in seconds: later (or negative,
// or not finite) exp, iat and nbf values are refused before the JWT
// library converts them. It turns a float of seconds into an int64 of
// nanoseconds, and a value out of that range wraps around (1e300 becomes
// a date long past): an nbf or iat far in the future would pass as past.
const maxNumericDate = 253402300799

// checkNumericDates refuses a JWT whose exp, iat or nbf is not a JSON
// number of seconds between 0 and maxNumericDate. A payload that cannot
// be read is left to the JWT parser, which refuses it as malformed.
func checkNumericDates(raw, kind string) error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var claims map[string]json.RawMessage
	if json.Unmarshal(payload, &claims) != nil {
		return nil
	}
	for _, name := range []string{"exp", "iat", "nbf"} {
		v, ok := claims[name]
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || len(v) == 0 || v[0] == '"' || f < 0 || f > maxNumericDate {
			return authnf("the %s's %s is not a time between 1970 and 9999 in seconds", kind, name)
		}
	}
	return nil
}
