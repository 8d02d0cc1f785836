package hooks

import (
	"encoding/json"
	"reflect"

	jsoniter "github.com/json-iterator/go"
)

// fastJSON decodes like encoding/json at about twice its speed; order-sign
// decodes its orders, Coverage and prefetch Bundles with it (a third of
// the hook service's CPU went to encoding/json).
var fastJSON = jsoniter.ConfigCompatibleWithStandardLibrary

// unmarshal is json.Unmarshal, faster. What it accepts and how it fills v
// are encoding/json's; on an error v is zeroed and decoded again with
// encoding/json, so that the error, and what is left in v, are exactly
// encoding/json's too (callers quote the message and read what decoded).
// Errors are the rare path.
func unmarshal(data []byte, v any) error {
	if fastJSON.Unmarshal(data, v) == nil {
		return nil
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv.Elem().SetZero()
	}
	return json.Unmarshal(data, v)
}
