package fhir

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits bound what one JSON request body may hold. They are checked by
// Scan in one pass over the bytes, before any parse that builds a tree:
// the base R4 parse and the profile validator cost about 2.5 KB of memory
// per JSON value, so a small body of many tiny values (a Bundle of empty
// entries) would otherwise take a thousand times its size.
type Limits struct {
	// MaxDepth is the deepest nesting of objects and arrays.
	MaxDepth int
	// MaxValues is the most JSON values (objects, arrays, strings, numbers,
	// booleans, nulls) in the body.
	MaxValues int
	// MaxArray is the longest array.
	MaxArray int
	// MaxEntries is the longest array named "entry" (Bundle.entry).
	MaxEntries int
}

// DefaultLimits are far above any real PAS or CRD payload: the largest
// request Bundles of the Da Vinci kits hold under 2,000 values, arrays of
// under 300 and a few dozen entries.
var DefaultLimits = Limits{MaxDepth: 100, MaxValues: 50_000, MaxArray: 10_000, MaxEntries: 1_000}

// Scan checks raw against lim and against two rules of JSON that
// encoding/json lets pass and FHIR forbids: an object may not repeat a
// member name (the JSON representation of FHIR, §"JSON"), and a string may
// not hold an unpaired UTF-16 surrogate escape (\ud800 alone is no
// character). A limit exceeded is a TooLarge error (413) naming the limit;
// a duplicate name or a lone surrogate is Invalid (400) with the FHIRPath of
// the place. Scan does not otherwise validate the JSON (the parsers after it
// do); it never panics and allocates little beyond one set of member names
// per open object.
func Scan(raw []byte, lim Limits) error {
	sc := scanner{raw: raw, lim: lim}
	return sc.run()
}

type frame struct {
	object bool
	key    string // object: the current member's name
	n      int    // array: elements so far; object: members so far
	keys   []string
	set    map[string]struct{}
	entry  bool // an array named "entry"
}

type scanner struct {
	raw       []byte
	lim       Limits
	stack     []frame
	values    int
	expectKey bool
	rootType  string
	found     *Error // the first duplicate or surrogate, rendered at the end
	foundAt   []frame
}

func (s *scanner) run() error {
	raw := s.raw
	for i := 0; i < len(raw); {
		c := raw[i]
		switch c {
		case ' ', '\t', '\n', '\r', ':':
			i++
		case ',':
			if top := s.top(); top != nil && top.object {
				s.expectKey = true
			}
			i++
		case '{', '[':
			if err := s.value(); err != nil {
				return err
			}
			if s.lim.MaxDepth > 0 && len(s.stack) >= s.lim.MaxDepth {
				return InvalidAt("too-costly", s.path(), "the JSON nesting is deeper than %d levels", s.lim.MaxDepth)
			}
			f := frame{object: c == '{'}
			if top := s.top(); top != nil && top.object && top.key == "entry" && !f.object {
				f.entry = true
			}
			s.stack = append(s.stack, f)
			s.expectKey = f.object
			i++
		case '}', ']':
			if len(s.stack) > 0 {
				s.stack[len(s.stack)-1] = frame{}
				s.stack = s.stack[:len(s.stack)-1]
			}
			s.expectKey = false
			i++
		case '"':
			end, str, err := s.str(i)
			if err != nil {
				return err
			}
			if top := s.top(); top != nil && top.object && s.expectKey {
				s.member(top, str)
				s.expectKey = false
			} else {
				if err := s.value(); err != nil {
					return err
				}
				if len(s.stack) == 1 && s.stack[0].object && s.stack[0].key == "resourceType" && s.rootType == "" {
					s.rootType = str
				}
			}
			i = end
		default:
			// A number, true, false, null (or junk the parsers will refuse).
			if err := s.value(); err != nil {
				return err
			}
			for i < len(raw) && !strings.ContainsRune(" \t\r\n,:]}[{\"", rune(raw[i])) {
				i++
			}
		}
	}
	if s.found != nil {
		s.stack = s.foundAt
		for i := range s.found.Issues {
			s.found.Issues[i].Expression = s.path()
		}
		s.found.Message = s.found.Issues[0].Diagnostics + " (at " + s.path() + ")"
		return s.found
	}
	return nil
}

func (s *scanner) top() *frame {
	if len(s.stack) == 0 {
		return nil
	}
	return &s.stack[len(s.stack)-1]
}

// value counts a value that starts here, and an element of the enclosing
// array.
func (s *scanner) value() error {
	s.values++
	if s.lim.MaxValues > 0 && s.values > s.lim.MaxValues {
		return tooCostly("", "the body holds more than %d JSON values (limit PRIORA_MAX_JSON_VALUES)", s.lim.MaxValues)
	}
	top := s.top()
	if top == nil || top.object {
		return nil
	}
	top.n++
	if top.entry && s.lim.MaxEntries > 0 && top.n > s.lim.MaxEntries {
		return tooCostly(s.arrayPath(), "more than %d entries (limit PRIORA_MAX_ENTRIES)", s.lim.MaxEntries)
	}
	if s.lim.MaxArray > 0 && top.n > s.lim.MaxArray {
		return tooCostly(s.arrayPath(), "an array with more than %d elements (limit PRIORA_MAX_ARRAY)", s.lim.MaxArray)
	}
	return nil
}

// tooCostly is a 413 naming the limit; its message is the diagnostics, so
// that wire formats without issues (CDS Hooks) show them too.
func tooCostly(expr, format string, n int) *Error {
	msg := fmt.Sprintf(format, n)
	return &Error{Kind: TooLarge, Message: msg, Issues: []Issue{{Severity: "error", Code: "too-costly", Expression: expr, Diagnostics: msg}}}
}

// member records an object member's name and notes the first repeat.
func (s *scanner) member(f *frame, name string) {
	f.key = name
	f.n++
	dup := false
	if f.set != nil {
		_, dup = f.set[name]
		f.set[name] = struct{}{}
	} else {
		for _, k := range f.keys {
			if k == name {
				dup = true
				break
			}
		}
		f.keys = append(f.keys, name)
		if len(f.keys) > 16 {
			f.set = make(map[string]struct{}, 2*len(f.keys))
			for _, k := range f.keys {
				f.set[k] = struct{}{}
			}
			f.keys = nil
		}
	}
	if dup && s.found == nil {
		s.found = &Error{Kind: Invalid, Message: "a JSON object repeats a member name", Issues: []Issue{{Severity: "error", Code: "structure",
			Diagnostics: "the member " + strconv.Quote(name) + " appears twice in one object; FHIR JSON forbids repeated names"}}}
		s.remember()
	}
}

// remember keeps the stack (names and indexes only) for the path of the
// first finding.
func (s *scanner) remember() {
	s.foundAt = make([]frame, len(s.stack))
	for i, f := range s.stack {
		s.foundAt[i] = frame{object: f.object, key: f.key, n: f.n}
	}
}

// str reads the string starting at raw[i] (a quote): where it ends, its
// text when it is a member name (decoded if it has escapes), and an error
// for a lone surrogate escape.
func (s *scanner) str(i int) (int, string, error) {
	raw := s.raw
	j := i + 1
	escaped := false
	for j < len(raw) {
		c := raw[j]
		if c == '"' {
			break
		}
		if c != '\\' {
			j++
			continue
		}
		escaped = true
		if j+1 < len(raw) && raw[j+1] == 'u' {
			r, ok := hex4(raw, j+2)
			if ok && r >= 0xD800 && r <= 0xDFFF {
				paired := false
				if r <= 0xDBFF && j+7 < len(raw) && raw[j+6] == '\\' && raw[j+7] == 'u' {
					if lo, ok := hex4(raw, j+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
						paired = true
						j += 6
					}
				}
				if !paired && s.found == nil {
					s.found = &Error{Kind: Invalid, Message: "a JSON string holds an unpaired surrogate", Issues: []Issue{{Severity: "error", Code: "value",
						Diagnostics: "the escape \\u" + strings.ToLower(string(raw[j+2:j+6])) + " is an unpaired UTF-16 surrogate, which is no character"}}}
					s.remember()
				}
			}
			j += 6
			continue
		}
		j += 2
	}
	end := min(j+1, len(raw))
	// Member names are needed; other strings only for resourceType.
	top := s.top()
	need := top != nil && top.object && (s.expectKey || (len(s.stack) == 1 && top.key == "resourceType"))
	if !need || j > len(raw) {
		return end, "", nil
	}
	body := raw[i+1 : min(j, len(raw))]
	if !escaped {
		return end, string(body), nil
	}
	var out string
	if json.Unmarshal(raw[i:end], &out) != nil || !utf8.ValidString(out) {
		return end, string(body), nil
	}
	return end, out, nil
}

func hex4(raw []byte, at int) (rune, bool) {
	if at+4 > len(raw) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(raw[at:at+4]), 16, 16)
	return rune(v), err == nil
}

// path is the FHIRPath of the current place: the root's resourceType, then
// member names and [index] for array elements.
func (s *scanner) path() string {
	var b strings.Builder
	b.WriteString(s.rootType)
	if b.Len() == 0 {
		b.WriteString("$this")
	}
	for _, f := range s.stack {
		if f.object {
			if f.key != "" {
				b.WriteString(".")
				b.WriteString(f.key)
			}
		} else if f.n > 0 {
			b.WriteString("[" + strconv.Itoa(f.n-1) + "]")
		}
	}
	return b.String()
}

// arrayPath is the FHIRPath of the array being counted (without index).
func (s *scanner) arrayPath() string {
	n := len(s.stack)
	saved := s.stack[n-1].n
	s.stack[n-1].n = 0
	p := s.path()
	s.stack[n-1].n = saved
	return p
}
