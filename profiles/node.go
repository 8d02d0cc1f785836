package profiles

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// A JSON document decoded once, shared by every reader of a request: the
// profile validator (ValidatePASRequestTree), FHIRPath (Node.Resource)
// and the business logic, which reads Go structs from it (Node.Decode)
// instead of decoding the bytes again. The tree keeps member order and
// each value's place in the bytes (Node.Raw), so raw parts (entries kept
// as json.RawMessage) are slices of the document, not copies.

// Node is one value of a decoded document; the zero Node is no value.
// Nodes are read-only and safe for concurrent use.
type Node struct {
	raw []byte // the whole document
	v   *jval
}

// ParseDoc decodes a JSON document into a tree. It accepts RFC 8259 JSON
// with valid UTF-8 strings, nested at most 128 deep: a subset of what
// encoding/json accepts.
func ParseDoc(raw []byte) (Node, error) {
	if len(raw) > math.MaxInt32 {
		return Node{}, errors.New("document too large")
	}
	v, err := parseJSONMode(raw, true)
	if err != nil {
		return Node{}, err
	}
	return Node{raw: raw, v: v}, nil
}

// Valid reports whether n holds a value.
func (n Node) Valid() bool { return n.v != nil }

// Raw is the value's bytes as written in the document.
func (n Node) Raw() []byte {
	if n.v == nil {
		return nil
	}
	return n.raw[n.v.start:n.v.end:n.v.end]
}

// At returns the node whose bytes are part, a slice of n's document (as
// Decode leaves json.RawMessage fields), or the zero Node when part is
// not one value of the document (a copy, or bytes from elsewhere).
func (n Node) At(part []byte) Node {
	if n.v == nil || len(part) == 0 || len(n.raw) == 0 {
		return Node{}
	}
	off := int(uintptr(unsafe.Pointer(unsafe.SliceData(part))) - uintptr(unsafe.Pointer(unsafe.SliceData(n.raw))))
	if off < int(n.v.start) || off+len(part) > int(n.v.end) || &n.raw[off] != &part[0] {
		return Node{}
	}
	start, end := int32(off), int32(off+len(part))
	v := n.v
	for v.start != start || v.end != end {
		var next *jval
		switch v.kind {
		case jObj:
			i := sort.Search(len(v.obj), func(i int) bool { return v.obj[i].val.end > start })
			if i < len(v.obj) {
				next = v.obj[i].val
			}
		case jArr:
			i := sort.Search(len(v.arr), func(i int) bool { return v.arr[i].end > start })
			if i < len(v.arr) {
				next = v.arr[i]
			}
		}
		if next == nil || next.start > start || next.end < end {
			return Node{}
		}
		v = next
	}
	return Node{n.raw, v}
}

// IsObject and IsArray report the JSON kind of n.
func (n Node) IsObject() bool { return n.v != nil && n.v.kind == jObj }
func (n Node) IsArray() bool  { return n.v != nil && n.v.kind == jArr }

// String returns a JSON string's value.
func (n Node) String() (string, bool) {
	if n.v == nil || n.v.kind != jStr {
		return "", false
	}
	return n.v.s, true
}

// Number returns a JSON number's text.
func (n Node) Number() (string, bool) {
	if n.v == nil || n.v.kind != jNum {
		return "", false
	}
	return n.v.s, true
}

// Get returns the last member called name of an object (the member a
// duplicate name leaves in force, as with encoding/json into a map).
func (n Node) Get(name string) Node {
	if n.v == nil || n.v.kind != jObj {
		return Node{}
	}
	for i := len(n.v.obj) - 1; i >= 0; i-- {
		if n.v.obj[i].name == name {
			return Node{n.raw, n.v.obj[i].val}
		}
	}
	return Node{}
}

// Len is the number of elements of an array, or of members of an object.
func (n Node) Len() int {
	if n.v == nil {
		return 0
	}
	if n.v.kind == jArr {
		return len(n.v.arr)
	}
	return len(n.v.obj)
}

// Index returns element i of an array.
func (n Node) Index(i int) Node {
	if n.v == nil || n.v.kind != jArr || i < 0 || i >= len(n.v.arr) {
		return Node{}
	}
	return Node{n.raw, n.v.arr[i]}
}

// Member returns member i of an object: its name and value.
func (n Node) Member(i int) (string, Node) {
	if n.v == nil || n.v.kind != jObj || i < 0 || i >= len(n.v.obj) {
		return "", Node{}
	}
	return n.v.obj[i].name, Node{n.raw, n.v.obj[i].val}
}

// Resource is the resource n holds as a FHIRPath focus, like
// ParseResource(n.Raw()) without decoding the bytes again.
func (n Node) Resource() (Value, error) {
	if n.v == nil {
		return Value{}, errNotResource
	}
	root, err := buildTree(n.v)
	if err != nil {
		return Value{}, err
	}
	return Value{fpValue{e: root}}, nil
}

// Decode stores n in the value ptr points to, which must be the zero
// value of its type, exactly as json.Unmarshal(n.Raw(), ptr) would: the
// same value, or, when that would fail or its outcome depends on rules
// this reader does not follow (null, duplicate or case-folded member
// names, lone surrogate escapes, base64, maps, interfaces, unmarshalers
// other than json.RawMessage), by calling json.Unmarshal itself. A
// json.RawMessage is a slice of the document, not a copy.
func (n Node) Decode(ptr any) error {
	rv := reflect.ValueOf(ptr)
	if n.v == nil || rv.Kind() != reflect.Pointer || rv.IsNil() {
		return json.Unmarshal(n.Raw(), ptr)
	}
	if decodeFast(n.raw, n.v, rv.Elem()) {
		return nil
	}
	rv.Elem().SetZero()
	return json.Unmarshal(n.Raw(), ptr)
}

var (
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
	numberType      = reflect.TypeFor[json.Number]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodeFast decodes v into out (a zero value) and reports whether it
// could do so exactly as encoding/json does.
func decodeFast(raw []byte, v *jval, out reflect.Value) bool {
	if v.kind == jNull {
		return false
	}
	t := out.Type()
	if t == rawMessageType {
		out.SetBytes(raw[v.start:v.end:v.end])
		return true
	}
	if custom(t) {
		return false
	}
	switch t.Kind() {
	case reflect.Pointer:
		if custom(t.Elem()) && t.Elem() != rawMessageType {
			return false
		}
		p := reflect.New(t.Elem())
		if !decodeFast(raw, v, p.Elem()) {
			return false
		}
		out.Set(p)
		return true
	case reflect.Struct:
		if v.kind != jObj {
			return false
		}
		plan := planOf(t)
		if plan == nil {
			return false
		}
		var set uint64 // fields assigned (a struct of more than 64 is not planned)
		for _, f := range v.obj {
			i := plan.field(f.name)
			if i < 0 {
				continue // unknown members are ignored
			}
			if set&(1<<i) != 0 {
				return false // a second member for the same field
			}
			set |= 1 << i
			if !decodeFast(raw, f.val, out.Field(plan.index[i])) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if v.kind != jArr || t.Elem().Kind() == reflect.Uint8 {
			return false
		}
		s := reflect.MakeSlice(t, len(v.arr), len(v.arr))
		for i, e := range v.arr {
			if !decodeFast(raw, e, s.Index(i)) {
				return false
			}
		}
		out.Set(s)
		return true
	case reflect.String:
		switch {
		case t == numberType:
			if v.kind != jNum {
				return false
			}
		case v.kind != jStr || loneSurrogate(raw[v.start:v.end]):
			return false
		}
		out.SetString(v.s)
		return true
	case reflect.Bool:
		if v.kind != jBool {
			return false
		}
		out.SetBool(v.s == "true")
		return true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.kind != jNum {
			return false
		}
		i, err := strconv.ParseInt(v.s, 10, 64)
		if err != nil || out.OverflowInt(i) {
			return false
		}
		out.SetInt(i)
		return true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if v.kind != jNum {
			return false
		}
		u, err := strconv.ParseUint(v.s, 10, 64)
		if err != nil || out.OverflowUint(u) {
			return false
		}
		out.SetUint(u)
		return true
	case reflect.Float32, reflect.Float64:
		if v.kind != jNum {
			return false
		}
		f, err := strconv.ParseFloat(v.s, t.Bits())
		if err != nil || out.OverflowFloat(f) {
			return false
		}
		out.SetFloat(f)
		return true
	}
	return false // maps, interfaces, arrays, ...: encoding/json's business
}

// custom reports whether t decodes itself (json.Unmarshaler or
// encoding.TextUnmarshaler, on the value or its pointer).
func custom(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return t.Implements(unmarshalerType) || pt.Implements(unmarshalerType) ||
		t.Implements(textUnmarshaler) || pt.Implements(textUnmarshaler)
}

// loneSurrogate reports whether a JSON string's bytes hold a \u escape
// of a UTF-16 surrogate (encoding/json and this parser may read those
// differently; they are left to encoding/json).
func loneSurrogate(b []byte) bool {
	for i := bytes.IndexByte(b, '\\'); i >= 0 && i+5 < len(b); {
		if b[i+1] == 'u' && (b[i+2] == 'd' || b[i+2] == 'D') && strings.IndexByte("89abcdefABCDEF", b[i+3]) >= 0 {
			return true
		}
		j := bytes.IndexByte(b[i+2:], '\\')
		if j < 0 {
			break
		}
		i += 2 + j
	}
	return false
}

// structPlan lists the JSON names of a struct's fields as encoding/json
// sees them.
type structPlan struct {
	names []string
	index []int
}

// field returns the plan position for member name: an exact match, else
// a case-insensitive one (encoding/json's rule); -1 for none.
func (p *structPlan) field(name string) int {
	for i, n := range p.names {
		if n == name {
			return i
		}
	}
	for i, n := range p.names {
		if strings.EqualFold(n, name) {
			return i
		}
	}
	return -1
}

var plans sync.Map // reflect.Type -> *structPlan (nil: left to encoding/json)

// planOf returns the plan of struct type t, or nil when its fields use
// rules decodeFast does not follow (embedded fields, ",string", more than
// 64 fields, two fields with one name).
func planOf(t reflect.Type) *structPlan {
	if p, ok := plans.Load(t); ok {
		return p.(*structPlan)
	}
	p := &structPlan{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			p = nil
			break
		}
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",string,") {
			p = nil
			break
		}
		if name == "" {
			name = f.Name
		}
		dup := false
		for _, n := range p.names {
			if strings.EqualFold(n, name) {
				dup = true
			}
		}
		if dup || len(p.names) == 64 {
			p = nil
			break
		}
		p.names = append(p.names, name)
		p.index = append(p.index, i)
	}
	plans.Store(t, p)
	return p
}
