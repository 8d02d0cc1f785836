package profiles

import (
	"fmt"
	"slices"
	"strings"
)

// The exported face of the FHIRPath engine for callers outside validation
// (coverage criteria): compile an expression once, evaluate it many times
// over parsed resources with caller-supplied variables and functions.

// Node is one element of a parsed FHIR resource.
type Node struct {
	e   *elem
	idx *refIndex
}

// refIndex resolves references inside a Bundle: by fullUrl and by
// "Type/id".
type refIndex struct{ byRef map[string]*elem }

// ParseResource parses a FHIR JSON resource for evaluation. In a Bundle,
// resolve() finds entries by fullUrl and by Type/id.
func ParseResource(b []byte) (*Node, error) {
	v, err := parseJSON(b)
	if err != nil {
		return nil, err
	}
	root, err := buildTree(v)
	if err != nil {
		return nil, err
	}
	idx := &refIndex{byRef: map[string]*elem{}}
	if root.resType == "Bundle" {
		for _, en := range root.child("entry") {
			res := en.first("resource")
			if res == nil {
				continue
			}
			if fu := en.str("fullUrl"); fu != "" {
				idx.byRef[fu] = res
			}
			if id := res.str("id"); id != "" && res.resType != "" {
				idx.byRef[res.resType+"/"+id] = res
			}
		}
	}
	return &Node{e: root, idx: idx}, nil
}

func (idx *refIndex) resolve(ref string, _ *elem) *elem {
	if t := idx.byRef[ref]; t != nil {
		return t
	}
	// An absolute URL ending in Type/id also names a bundled Type/id.
	if parts := strings.Split(ref, "/"); len(parts) >= 2 {
		return idx.byRef[parts[len(parts)-2]+"/"+parts[len(parts)-1]]
	}
	return nil
}

// Path is the node's FHIRPath location from its root, e.g.
// Bundle.entry[0].resource.item[1].
func (n *Node) Path() string { return n.e.path() }

// Value is one item of a FHIRPath collection.
type Value struct{ v fpValue }

// NodeValues makes a collection of nodes.
func NodeValues(ns ...*Node) []Value {
	out := make([]Value, 0, len(ns))
	for _, n := range ns {
		if n != nil {
			out = append(out, Value{fpValue{e: n.e}})
		}
	}
	return out
}

// StringValue makes a String (or, written as YYYY-MM-DD, a Date) value.
func StringValue(s string) Value { return Value{fpValue{k: fpStr, s: s}} }

// Path is the value's location when it is an element of a resource.
func (v Value) Path() string {
	if v.v.k == fpElem && v.v.e != nil {
		return v.v.e.path()
	}
	return ""
}

// String returns the value as text when it is a primitive.
func (v Value) String() (string, bool) {
	p, ok := v.v.prim()
	if !ok {
		return "", false
	}
	switch p.k {
	case fpInt, fpDec, fpQty:
		if p.s != "" {
			return p.s, true
		}
		return fmt.Sprint(p.n), true
	case fpBool:
		return fmt.Sprint(p.b), true
	}
	return p.s, true
}

// ExprFunc is an environment function callable as name(args) or
// %name(args): it gets its arguments evaluated to strings and returns
// elements.
type ExprFunc func(args []string) []*Node

// Env is what an evaluation sees besides its focus: variables (without
// the %) and functions.
type Env struct {
	Vars  map[string][]Value
	Funcs map[string]ExprFunc
}

// Expr is a compiled FHIRPath expression, safe for concurrent use.
type Expr struct {
	src  string
	node *fpNode
}

// builtinVars are the variables the engine knows itself.
var builtinVars = []string{"resource", "rootResource", "context", "ucum", "sct", "loinc"}

// CompileExpr compiles src, accepting the environment variables vars and
// functions funcs besides the built-in ones; any other variable or
// function is a compile error.
func CompileExpr(src string, vars, funcs []string) (*Expr, error) {
	n, err := parseFHIRPathWith(src, func(name string) bool { return slices.Contains(funcs, name) })
	if err != nil {
		return nil, err
	}
	if err := checkVars(n, vars); err != nil {
		return nil, err
	}
	return &Expr{src: src, node: n}, nil
}

func checkVars(n *fpNode, vars []string) error {
	if n == nil {
		return nil
	}
	if n.op == "var" && !slices.Contains(vars, n.name) && !slices.Contains(builtinVars, n.name) &&
		!strings.HasPrefix(n.name, "vs-") && !strings.HasPrefix(n.name, "ext-") {
		return fmt.Errorf("unknown variable %%%s", n.name)
	}
	for _, a := range n.args {
		if err := checkVars(a, vars); err != nil {
			return err
		}
	}
	if err := checkVars(n.l, vars); err != nil {
		return err
	}
	return checkVars(n.r, vars)
}

// String is the expression's source.
func (x *Expr) String() string { return x.src }

// ExprResult is an evaluation's outcome: the collection, and the locations of
// the elements the expression compared or tested outside iterations (what
// it read to decide), in order, without repeats.
type ExprResult struct {
	Values   []Value
	Evidence []string
	idx      *refIndex
}

// Nodes returns the elements among the values (references in them resolve
// like the focus's).
func (r ExprResult) Nodes() []*Node {
	var out []*Node
	for _, v := range r.Values {
		if v.v.k == fpElem && v.v.e != nil {
			out = append(out, &Node{e: v.v.e, idx: r.idx})
		}
	}
	return out
}

// Bool is the result as a FHIRPath boolean: ok is false for an empty
// collection.
func (r ExprResult) Bool() (val, ok bool) { return toBool(r.vals()) }

func (r ExprResult) vals() []fpValue {
	out := make([]fpValue, len(r.Values))
	for i, v := range r.Values {
		out[i] = v.v
	}
	return out
}

// Eval evaluates x with focus as its input. References resolve within the
// Bundle the focus was parsed from.
func (x *Expr) Eval(focus *Node, env Env) (res ExprResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("FHIRPath %q: %v", x.src, r)
		}
	}()
	var seen []*elem
	fe := &fpEnv{vars: map[string][]fpValue{}, seen: &seen}
	var in []fpValue
	if focus != nil {
		in = []fpValue{{e: focus.e}}
		fe.resource, fe.rootRes = focus.e.resource(), focus.e.root()
		fe.resolve = focus.idx.resolve
		fe.this = in
		res.idx = focus.idx
	}
	for k, vs := range env.Vars {
		c := make([]fpValue, len(vs))
		for i, v := range vs {
			c[i] = v.v
		}
		fe.vars[k] = c
	}
	if len(env.Funcs) > 0 {
		fe.funcs = map[string]ExprFunc{}
		for k, f := range env.Funcs {
			fe.funcs[k] = f
		}
	}
	out, err := fe.eval(x.node, in)
	if err != nil {
		return ExprResult{}, err
	}
	for _, v := range out {
		res.Values = append(res.Values, Value{v})
	}
	for _, e := range seen {
		if p := e.path(); !slices.Contains(res.Evidence, p) {
			res.Evidence = append(res.Evidence, p)
		}
	}
	return res, nil
}
