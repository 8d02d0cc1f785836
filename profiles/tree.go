package profiles

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The instance is decoded once into a tree of elements that both the
// snapshot walker and the FHIRPath engine read. JSON names, array indexes
// and "_x" primitive-extension siblings are kept, so every element can
// print its own FHIRPath location.

type jkind uint8

const (
	jNull jkind = iota
	jBool
	jNum
	jStr
	jObj
	jArr
)

func (k jkind) String() string {
	return [...]string{"null", "boolean", "number", "string", "object", "array"}[k]
}

type jfield struct {
	name string
	val  *jval
}

type jval struct {
	kind       jkind
	s          string // string value, number text, or "true"/"false"
	obj        []jfield
	arr        []*jval
	start, end int32 // the value's bytes in the parsed document (Node.Raw)
}

func (v *jval) get(name string) *jval {
	if v == nil {
		return nil
	}
	for i := range v.obj {
		if v.obj[i].name == name {
			return v.obj[i].val
		}
	}
	return nil
}

// parseJSON decodes RFC 8259 JSON into a jval tree, keeping member order.
func parseJSON(data []byte) (*jval, error) {
	return parseJSONMode(data, false)
}

func parseJSONMode(data []byte, strict bool) (*jval, error) {
	p := jparser{data: data, strict: strict}
	p.ws()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.data) {
		return nil, p.errf("unexpected data after the top-level value")
	}
	return v, nil
}

const maxDepth = 128

type jparser struct {
	data []byte
	i    int
	// strict rejects numbers with leading zeros ("01"), which RFC 8259
	// and encoding/json reject: ParseDoc accepts only what encoding/json
	// accepts (profile definitions are read leniently, as before).
	strict bool
}

func (p *jparser) errf(format string, a ...any) error {
	return fmt.Errorf("invalid JSON at byte %d: %s", p.i, fmt.Sprintf(format, a...))
}

func (p *jparser) ws() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value parses one value and records where its bytes are.
func (p *jparser) value(depth int) (*jval, error) {
	start := p.i
	v, err := p.value0(depth)
	if v != nil {
		v.start, v.end = int32(start), int32(p.i)
	}
	return v, err
}

func (p *jparser) value0(depth int) (*jval, error) {
	if depth > maxDepth {
		return nil, p.errf("nesting deeper than %d", maxDepth)
	}
	if p.i >= len(p.data) {
		return nil, p.errf("unexpected end of input")
	}
	switch c := p.data[p.i]; {
	case c == '{':
		p.i++
		v := &jval{kind: jObj}
		p.ws()
		if p.i < len(p.data) && p.data[p.i] == '}' {
			p.i++
			return v, nil
		}
		for {
			p.ws()
			if p.i >= len(p.data) || p.data[p.i] != '"' {
				return nil, p.errf("expected a member name")
			}
			name, err := p.str()
			if err != nil {
				return nil, err
			}
			p.ws()
			if p.i >= len(p.data) || p.data[p.i] != ':' {
				return nil, p.errf("expected ':'")
			}
			p.i++
			p.ws()
			val, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			v.obj = append(v.obj, jfield{name, val})
			p.ws()
			if p.i >= len(p.data) {
				return nil, p.errf("unexpected end of input")
			}
			if p.data[p.i] == ',' {
				p.i++
				continue
			}
			if p.data[p.i] == '}' {
				p.i++
				return v, nil
			}
			return nil, p.errf("expected ',' or '}'")
		}
	case c == '[':
		p.i++
		v := &jval{kind: jArr}
		p.ws()
		if p.i < len(p.data) && p.data[p.i] == ']' {
			p.i++
			return v, nil
		}
		for {
			p.ws()
			val, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			v.arr = append(v.arr, val)
			p.ws()
			if p.i >= len(p.data) {
				return nil, p.errf("unexpected end of input")
			}
			if p.data[p.i] == ',' {
				p.i++
				continue
			}
			if p.data[p.i] == ']' {
				p.i++
				return v, nil
			}
			return nil, p.errf("expected ',' or ']'")
		}
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return &jval{kind: jStr, s: s}, nil
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if strings.HasPrefix(string(p.data[p.i:min(p.i+5, len(p.data))]), lit) {
				p.i += len(lit)
				if lit == "null" {
					return &jval{kind: jNull}, nil
				}
				return &jval{kind: jBool, s: lit}, nil
			}
		}
		return nil, p.errf("invalid literal")
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.i
		if c == '-' {
			p.i++
		}
		digits := func() int {
			n := 0
			for p.i < len(p.data) && p.data[p.i] >= '0' && p.data[p.i] <= '9' {
				p.i++
				n++
			}
			return n
		}
		first := p.i
		if digits() == 0 {
			return nil, p.errf("invalid number")
		}
		if p.strict && p.data[first] == '0' && p.i-first > 1 {
			return nil, p.errf("invalid number: leading zero")
		}
		if p.i < len(p.data) && p.data[p.i] == '.' {
			p.i++
			if digits() == 0 {
				return nil, p.errf("invalid number")
			}
		}
		if p.i < len(p.data) && (p.data[p.i] == 'e' || p.data[p.i] == 'E') {
			p.i++
			if p.i < len(p.data) && (p.data[p.i] == '+' || p.data[p.i] == '-') {
				p.i++
			}
			if digits() == 0 {
				return nil, p.errf("invalid number")
			}
		}
		return &jval{kind: jNum, s: string(p.data[start:p.i])}, nil
	default:
		return nil, p.errf("unexpected character %q", c)
	}
}

func (p *jparser) str() (string, error) {
	p.i++ // opening quote
	start := p.i
	for p.i < len(p.data) {
		c := p.data[p.i]
		if c == '"' {
			s := string(p.data[start:p.i])
			p.i++
			if !utf8.ValidString(s) {
				return "", p.errf("invalid UTF-8 in string")
			}
			return s, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", p.errf("control character in string")
		}
		p.i++
	}
	// Slow path with escapes.
	var b strings.Builder
	b.Write(p.data[start:p.i])
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			p.i++
			s := b.String()
			if !utf8.ValidString(s) {
				return "", p.errf("invalid UTF-8 in string")
			}
			return s, nil
		case c == '\\':
			if p.i+1 >= len(p.data) {
				return "", p.errf("bad escape")
			}
			e := p.data[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r, err := p.hex4()
				if err != nil {
					return "", err
				}
				if r >= 0xD800 && r < 0xDC00 && p.i+6 <= len(p.data) && p.data[p.i] == '\\' && p.data[p.i+1] == 'u' {
					p.i += 2
					r2, err := p.hex4()
					if err != nil {
						return "", err
					}
					r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
				}
				b.WriteRune(r)
			default:
				return "", p.errf("bad escape")
			}
		case c < 0x20:
			return "", p.errf("control character in string")
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return "", p.errf("unterminated string")
}

func (p *jparser) hex4() (rune, error) {
	if p.i+4 > len(p.data) {
		return 0, p.errf("bad \\u escape")
	}
	n, err := strconv.ParseUint(string(p.data[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, p.errf("bad \\u escape")
	}
	p.i += 4
	return rune(n), nil
}

// elem is one FHIR element of the instance.
type elem struct {
	name    string // JSON property name as written ("valueString"); resource type at a root
	fname   string // FHIR name: name with the choice suffix removed once the walker knows it
	choice  string // the type suffix of a choice element ("String"), set by the walker
	typ     string // FHIR type code, set by the walker or, for resources, the parser
	index   int    // position in its JSON array, or -1
	parent  *elem
	prim    *jval   // primitive value, nil for complex elements and for "_x"-only primitives
	kids    []*elem // children in JSON order; "_x" content merged into x
	resType string  // resourceType, when this element is a resource
	kind    jkind   // JSON kind of the value (jObj for complex); jNull for "_x"-only
	inArray bool    // the JSON property was an array
	probs   []string
}

var errNotResource = errors.New("not a FHIR resource: the JSON object has no resourceType")

// buildTree turns a parsed JSON object that is a resource into an element tree.
func buildTree(v *jval) (*elem, error) {
	if v.kind != jObj {
		return nil, errNotResource
	}
	rt := v.get("resourceType")
	if rt == nil || rt.kind != jStr || rt.s == "" {
		return nil, errNotResource
	}
	root := &elem{name: rt.s, fname: rt.s, index: -1}
	fillObject(root, v)
	return root, nil
}

func fillObject(e *elem, v *jval) {
	e.kind = jObj
	if rt := v.get("resourceType"); rt != nil && rt.kind == jStr {
		e.resType = rt.s
		e.typ = rt.s
	}
	for _, f := range v.obj {
		name := f.name
		if name == "resourceType" {
			continue
		}
		if strings.HasPrefix(name, "_") {
			base := name[1:]
			if v.get(base) != nil {
				continue // merged when the base property is visited
			}
			addProp(e, base, nil, f.val)
			continue
		}
		addProp(e, name, f.val, v.get("_"+name))
	}
}

// addProp adds the children for property name with value val and primitive
// extension sibling ext (either may be nil).
func addProp(parent *elem, name string, val, ext *jval) {
	if (val != nil && val.kind == jArr) || (val == nil && ext != nil && ext.kind == jArr) {
		n := 0
		if val != nil {
			n = len(val.arr)
		}
		if ext != nil && ext.kind == jArr && len(ext.arr) > n {
			n = len(ext.arr)
		}
		if val != nil && ext != nil && ext.kind == jArr && len(ext.arr) != len(val.arr) {
			parent.probs = append(parent.probs, fmt.Sprintf("the arrays %s and _%s have different lengths", name, name))
		}
		if n == 0 {
			c := &elem{name: name, fname: name, index: -1, parent: parent, inArray: true, kind: jArr}
			c.probs = append(c.probs, "arrays must not be empty")
			parent.kids = append(parent.kids, c)
			return
		}
		for i := 0; i < n; i++ {
			var iv, ie *jval
			if val != nil && i < len(val.arr) {
				iv = val.arr[i]
			}
			if ext != nil && ext.kind == jArr && i < len(ext.arr) {
				ie = ext.arr[i]
			}
			c := &elem{name: name, fname: name, index: i, parent: parent, inArray: true}
			fillValue(c, iv, ie)
			parent.kids = append(parent.kids, c)
		}
		return
	}
	c := &elem{name: name, fname: name, index: -1, parent: parent}
	fillValue(c, val, ext)
	parent.kids = append(parent.kids, c)
}

func fillValue(c *elem, v, ext *jval) {
	if v != nil {
		switch v.kind {
		case jObj:
			fillObject(c, v)
			if len(v.obj) == 0 {
				c.probs = append(c.probs, "objects must not be empty")
			}
		case jArr:
			c.kind = jArr
			c.probs = append(c.probs, "nested arrays are not allowed")
		case jNull:
			if ext == nil || ext.kind == jNull {
				c.probs = append(c.probs, "null is not a valid value")
			}
		default:
			c.kind = v.kind
			c.prim = v
		}
	}
	if ext != nil && ext.kind == jObj {
		if c.kind == jObj {
			c.probs = append(c.probs, "'_"+c.name+"' is only allowed beside a primitive value")
			return
		}
		// id and extension of a primitive.
		tmp := &elem{}
		fillObject(tmp, ext)
		for _, k := range tmp.kids {
			k.parent = c
		}
		c.kids = tmp.kids
		c.probs = append(c.probs, tmp.probs...)
	} else if ext != nil && ext.kind != jNull {
		c.probs = append(c.probs, "'_"+c.name+"' must be an object")
	}
}

// child returns the children with the given FHIR name.
func (e *elem) child(name string) []*elem {
	var out []*elem
	for _, k := range e.kids {
		if k.fname == name {
			out = append(out, k)
		}
	}
	return out
}

func (e *elem) first(name string) *elem {
	for _, k := range e.kids {
		if k.fname == name {
			return k
		}
	}
	return nil
}

// str returns the primitive value of the first child called name.
func (e *elem) str(name string) string {
	if k := e.first(name); k != nil && k.prim != nil {
		return k.prim.s
	}
	return ""
}

// resource returns the resource that contains e (e itself for a resource).
func (e *elem) resource() *elem {
	for x := e; x != nil; x = x.parent {
		if x.resType != "" {
			return x
		}
	}
	return nil
}

// root returns the outermost element.
func (e *elem) root() *elem {
	x := e
	for x.parent != nil {
		x = x.parent
	}
	return x
}

// path returns e's location as FHIRPath, e.g.
// Bundle.entry[0].resource.item[1].extension[0].value.ofType(Coding).
func (e *elem) path() string {
	var segs []*elem
	for x := e; x != nil; x = x.parent {
		segs = append(segs, x)
	}
	var b strings.Builder
	for i := len(segs) - 1; i >= 0; i-- {
		x := segs[i]
		if i != len(segs)-1 {
			b.WriteByte('.')
		}
		if x.choice != "" {
			b.WriteString(x.fname)
		} else {
			b.WriteString(x.name)
		}
		if x.index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(x.index))
			b.WriteByte(']')
		}
		if x.choice != "" {
			b.WriteString(".ofType(")
			b.WriteString(x.choice)
			b.WriteByte(')')
		}
	}
	return b.String()
}
