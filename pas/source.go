package pas

import (
	"encoding/json"
	"sort"
	"strconv"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/profiles"
)

// source is a request's bytes and, when they decoded, the tree
// (profiles.ParseDoc) the profile validator reads as well: intake reads
// the Bundle, its entries and their references from that one tree
// instead of decoding each part again. Every read acts exactly as
// json.Unmarshal of the part would (profiles.Node.Decode); without a
// tree (the zero Node) it is json.Unmarshal.
type source struct {
	raw  []byte
	tree profiles.Node // raw decoded, or the zero Node
}

// newSource decodes raw into a tree; raw that does not decode (or
// decodes only under encoding/json's more lenient rules) is read with
// encoding/json, as before.
func newSource(raw []byte) source {
	tree, err := profiles.ParseDoc(raw)
	if err != nil {
		return source{raw: raw}
	}
	return source{raw: raw, tree: tree}
}

// part is the source of part, a slice of s.raw (a json.RawMessage that
// decode left in place), with its own subtree.
func (s source) part(part []byte) source {
	return source{raw: part, tree: s.tree.At(part)}
}

// decode is json.Unmarshal(part, v) for part, a slice of s.raw.
func (s source) decode(part []byte, v any) error {
	if n := s.tree.At(part); n.Valid() {
		return n.Decode(v)
	}
	return json.Unmarshal(part, v)
}

// references is fhir.References(part) for part, a slice of s.raw.
func (s source) references(part []byte) ([]fhir.Ref, error) {
	n := s.tree.At(part)
	if !n.Valid() || !numbersFit(n) {
		return fhir.References(part) // it fails on a number beyond float64
	}
	var out []fhir.Ref
	var path []byte
	nodeRefs(n, &path, &out)
	return out, nil
}

// nodeRefs is fhir.References' walk over a tree: the references below
// n (a string "reference" member of an object), each with its FHIRPath,
// skipping "contained". Where a name repeats in an object, its last
// member counts, as when the JSON is decoded into a map.
func nodeRefs(n profiles.Node, path *[]byte, out *[]fhir.Ref) {
	switch {
	case n.IsObject():
		if r, ok := n.Get("reference").String(); ok {
			*out = append(*out, fhir.Ref{Path: string(*path), Value: r})
		}
		l := len(*path)
		var last map[string]int // for a large object: each name's last member
		if n.Len() > 16 {
			last = make(map[string]int, n.Len())
			for i := 0; i < n.Len(); i++ {
				k, _ := n.Member(i)
				last[k] = i
			}
		}
		for i := 0; i < n.Len(); i++ {
			k, child := n.Member(i)
			if k == "contained" || k == "reference" || !(child.IsObject() || child.IsArray()) {
				continue
			}
			if (last != nil && last[k] != i) || (last == nil && laterMember(n, i, k)) {
				continue
			}
			*path = append(append(*path, '.'), k...)
			nodeRefs(child, path, out)
			*path = (*path)[:l]
		}
	case n.IsArray():
		l := len(*path)
		for i := 0; i < n.Len(); i++ {
			child := n.Index(i)
			if !(child.IsObject() || child.IsArray()) {
				continue
			}
			*path = append(strconv.AppendInt(append(*path, '['), int64(i), 10), ']')
			nodeRefs(child, path, out)
			*path = (*path)[:l]
		}
	}
}

// numbersFit reports whether every number below n is a float64, as
// fhir.References, decoding into any, needs.
func numbersFit(n profiles.Node) bool {
	if s, ok := n.Number(); ok {
		_, err := strconv.ParseFloat(s, 64)
		return err == nil
	}
	for i := 0; i < n.Len(); i++ {
		var child profiles.Node
		if n.IsArray() {
			child = n.Index(i)
		} else {
			_, child = n.Member(i)
		}
		if !numbersFit(child) {
			return false
		}
	}
	return true
}

// laterMember reports whether object n has another member called name
// after member i.
func laterMember(n profiles.Node, i int, name string) bool {
	for j := i + 1; j < n.Len(); j++ {
		if k, _ := n.Member(j); k == name {
			return true
		}
	}
	return false
}

// sortRefs orders references by path, as intake keeps them.
func sortRefs(refs []fhir.Ref) {
	sort.Slice(refs, func(a, c int) bool { return refs[a].Path < refs[c].Path })
}
