package profiles

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A small FHIRPath engine over the element tree. It implements what the
// invariants and discriminators of R4 core, US Core, PAS, CRD and HRex use
// (see VALIDATION-NOTES §2.1): navigation, indexers, the boolean, equality,
// comparison, membership, union and arithmetic operators, is/as, and about
// fifty functions. Evaluating on the shared tree avoids re-scanning JSON,
// which is what made github.com/gofhir/fhirpath cost ~55 ms per 50 KB
// Bundle.
//
// Expressions are compiled once per Registry and cached.

// pathEngine is the seam for swapping FHIRPath implementations.
type pathEngine interface {
	compile(expr string) (*fpNode, error)
}

type ownEngine struct{}

func (ownEngine) compile(expr string) (*fpNode, error) { return parseFHIRPath(expr) }

type compiledExpr struct {
	node *fpNode
	err  error
}

func (r *Registry) compileExpr(expr string) (*fpNode, error) {
	if c, ok := r.exprs.Load(expr); ok {
		ce := c.(*compiledExpr)
		return ce.node, ce.err
	}
	n, err := ownEngine{}.compile(expr)
	r.exprs.Store(expr, &compiledExpr{n, err})
	return n, err
}

// ---- values ----

type fpKind uint8

const (
	fpElem fpKind = iota
	fpStr
	fpInt
	fpDec
	fpBool
	fpQty
)

type fpValue struct {
	k    fpKind
	e    *elem
	s    string
	n    float64
	b    bool
	unit string
}

func (v fpValue) prim() (fpValue, bool) {
	if v.k != fpElem {
		return v, true
	}
	if v.e == nil || v.e.prim == nil {
		return v, false
	}
	p := v.e.prim
	switch p.kind {
	case jBool:
		return fpValue{k: fpBool, b: p.s == "true"}, true
	case jNum:
		f, _ := strconv.ParseFloat(p.s, 64)
		if strings.ContainsAny(p.s, ".eE") {
			return fpValue{k: fpDec, n: f, s: p.s}, true
		}
		return fpValue{k: fpInt, n: f, s: p.s}, true
	case jStr:
		return fpValue{k: fpStr, s: p.s}, true
	}
	return v, false
}

func (v fpValue) typeName() string {
	if v.k == fpElem {
		if v.e.typ != "" {
			return v.e.typ
		}
		if v.e.choice != "" {
			return v.e.choice
		}
		if v.e.prim != nil {
			switch v.e.prim.kind {
			case jBool:
				return "boolean"
			case jNum:
				return "decimal"
			}
			return "string"
		}
		return ""
	}
	return [...]string{"", "String", "Integer", "Decimal", "Boolean", "Quantity"}[v.k]
}

// ---- AST and parser ----

type fpNode struct {
	op   string // lit, id, var, call, idx, bin, neg, this, index, total, type
	name string
	lit  fpValue
	args []*fpNode
	l, r *fpNode
}

type fpTok struct {
	kind byte // i ident, s string, n number, d date, v var, o operator, e end
	s    string
}

func lexFHIRPath(src string) ([]fpTok, error) {
	var toks []fpTok
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			j := strings.Index(src[i+2:], "*/")
			if j < 0 {
				return nil, fmt.Errorf("unterminated comment")
			}
			i += j + 4
		case c == '\'':
			var b strings.Builder
			i++
			for i < len(src) && src[i] != '\'' {
				if src[i] == '\\' && i+1 < len(src) {
					i++
					switch src[i] {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					case 'r':
						b.WriteByte('\r')
					case 'u':
						if i+4 < len(src) {
							n, _ := strconv.ParseUint(src[i+1:i+5], 16, 32)
							b.WriteRune(rune(n))
							i += 4
						}
					default:
						b.WriteByte(src[i])
					}
					i++
					continue
				}
				b.WriteByte(src[i])
				i++
			}
			if i >= len(src) {
				return nil, fmt.Errorf("unterminated string")
			}
			i++
			toks = append(toks, fpTok{'s', b.String()})
		case c == '`':
			j := strings.IndexByte(src[i+1:], '`')
			if j < 0 {
				return nil, fmt.Errorf("unterminated identifier")
			}
			toks = append(toks, fpTok{'i', src[i+1 : i+1+j]})
			i += j + 2
		case c == '@':
			j := i + 1
			for j < len(src) && strings.IndexByte("0123456789-:T.+Z", src[j]) >= 0 {
				j++
			}
			toks = append(toks, fpTok{'d', src[i+1 : j]})
			i = j
		case c >= '0' && c <= '9':
			j := i
			for j < len(src) && (src[j] >= '0' && src[j] <= '9') {
				j++
			}
			if j+1 < len(src) && src[j] == '.' && src[j+1] >= '0' && src[j+1] <= '9' {
				j++
				for j < len(src) && (src[j] >= '0' && src[j] <= '9') {
					j++
				}
			}
			toks = append(toks, fpTok{'n', src[i:j]})
			i = j
		case c == '%' || c == '$' || c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z'):
			j := i + 1
			for j < len(src) && (src[j] == '_' || src[j]|0x20 >= 'a' && src[j]|0x20 <= 'z' || src[j] >= '0' && src[j] <= '9') {
				j++
			}
			if c == '%' && j == i+1 && j < len(src) && (src[j] == '\'' || src[j] == '`') {
				// %'quoted' or %`quoted`
				q := src[j]
				k := strings.IndexByte(src[j+1:], q)
				if k < 0 {
					return nil, fmt.Errorf("unterminated variable")
				}
				toks = append(toks, fpTok{'v', src[j+1 : j+1+k]})
				i = j + k + 2
				continue
			}
			if c == '%' {
				toks = append(toks, fpTok{'v', src[i+1 : j]})
			} else {
				toks = append(toks, fpTok{'i', src[i:j]})
			}
			i = j
		default:
			two := ""
			if i+1 < len(src) {
				two = src[i : i+2]
			}
			switch two {
			case "<=", ">=", "!=", "!~":
				toks = append(toks, fpTok{'o', two})
				i += 2
				continue
			}
			if strings.IndexByte(".[](),=~<>|+-*/&{}", c) >= 0 {
				toks = append(toks, fpTok{'o', string(c)})
				i++
				continue
			}
			return nil, fmt.Errorf("unexpected character %q", c)
		}
	}
	return append(toks, fpTok{'e', ""}), nil
}

type fpParser struct {
	toks []fpTok
	i    int
}

func parseFHIRPath(src string) (*fpNode, error) { return parseFHIRPathWith(src, nil) }

// parseFHIRPathWith parses src allowing, besides the built-in functions,
// those for which extra reports true.
func parseFHIRPathWith(src string, extra func(name string) bool) (*fpNode, error) {
	toks, err := lexFHIRPath(src)
	if err != nil {
		return nil, err
	}
	p := &fpParser{toks: toks}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if p.peek().kind != 'e' {
		return nil, fmt.Errorf("unexpected %q", p.peek().s)
	}
	if err := checkFuncs(n, extra); err != nil {
		return nil, err
	}
	return n, nil
}

func (p *fpParser) peek() fpTok { return p.toks[p.i] }
func (p *fpParser) next() fpTok { t := p.toks[p.i]; p.i++; return t }

func binPrec(t fpTok) int {
	if t.kind == 'o' {
		switch t.s {
		case "*", "/":
			return 9
		case "+", "-", "&":
			return 8
		case "|":
			return 6
		case "<", ">", "<=", ">=":
			return 5
		case "=", "~", "!=", "!~":
			return 4
		}
	}
	if t.kind == 'i' {
		switch t.s {
		case "div", "mod":
			return 9
		case "is", "as":
			return 7
		case "in", "contains":
			return 3
		case "and":
			return 2
		case "or", "xor":
			return 1
		case "implies":
			return 0
		}
	}
	return -1
}

func (p *fpParser) expr(minPrec int) (*fpNode, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		prec := binPrec(t)
		if prec < 0 || prec < minPrec {
			return l, nil
		}
		p.next()
		if t.s == "is" || t.s == "as" {
			ts, err := p.typeSpec()
			if err != nil {
				return nil, err
			}
			l = &fpNode{op: "call", name: t.s, l: l, args: []*fpNode{{op: "type", name: ts}}}
			continue
		}
		r, err := p.expr(prec + 1)
		if err != nil {
			return nil, err
		}
		l = &fpNode{op: "bin", name: t.s, l: l, r: r}
	}
}

func (p *fpParser) typeSpec() (string, error) {
	t := p.next()
	if t.kind != 'i' {
		return "", fmt.Errorf("expected a type name")
	}
	name := t.s
	for p.peek().kind == 'o' && p.peek().s == "." {
		p.next()
		t = p.next()
		name += "." + t.s
	}
	return name, nil
}

func (p *fpParser) unary() (*fpNode, error) {
	t := p.peek()
	if t.kind == 'o' && (t.s == "-" || t.s == "+") {
		p.next()
		n, err := p.unary()
		if err != nil {
			return nil, err
		}
		if t.s == "-" {
			return &fpNode{op: "neg", l: n}, nil
		}
		return n, nil
	}
	return p.postfix()
}

func (p *fpParser) postfix() (*fpNode, error) {
	n, err := p.term()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if t.kind == 'o' && t.s == "." {
			p.next()
			m, err := p.invocation()
			if err != nil {
				return nil, err
			}
			m.l = n
			n = m
			continue
		}
		if t.kind == 'o' && t.s == "[" {
			p.next()
			idx, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			if p.next().s != "]" {
				return nil, fmt.Errorf("expected ]")
			}
			n = &fpNode{op: "idx", l: n, r: idx}
			continue
		}
		return n, nil
	}
}

// invocation parses an identifier or function call; its input (l) is set
// by the caller (nil = the focus).
func (p *fpParser) invocation() (*fpNode, error) {
	t := p.next()
	if t.kind != 'i' {
		return nil, fmt.Errorf("expected an identifier, got %q", t.s)
	}
	switch t.s {
	case "$this":
		return &fpNode{op: "this"}, nil
	case "$index":
		return &fpNode{op: "index"}, nil
	case "$total":
		return &fpNode{op: "total"}, nil
	}
	if p.peek().kind == 'o' && p.peek().s == "(" {
		p.next()
		n := &fpNode{op: "call", name: t.s}
		if p.peek().s == ")" && p.peek().kind == 'o' {
			p.next()
			return n, nil
		}
		for {
			if (t.s == "is" || t.s == "as" || t.s == "ofType") && p.peek().kind == 'i' {
				ts, err := p.typeSpec()
				if err != nil {
					return nil, err
				}
				n.args = append(n.args, &fpNode{op: "type", name: ts})
			} else {
				a, err := p.expr(0)
				if err != nil {
					return nil, err
				}
				n.args = append(n.args, a)
			}
			c := p.next()
			if c.s == ")" {
				return n, nil
			}
			if c.s != "," {
				return nil, fmt.Errorf("expected , or )")
			}
		}
	}
	return &fpNode{op: "id", name: t.s}, nil
}

func (p *fpParser) term() (*fpNode, error) {
	t := p.peek()
	switch t.kind {
	case 's':
		p.next()
		return &fpNode{op: "lit", lit: fpValue{k: fpStr, s: t.s}}, nil
	case 'n':
		p.next()
		f, _ := strconv.ParseFloat(t.s, 64)
		k := fpInt
		if strings.Contains(t.s, ".") {
			k = fpDec
		}
		if p.peek().kind == 's' { // quantity literal 4 'mg'
			u := p.next()
			return &fpNode{op: "lit", lit: fpValue{k: fpQty, n: f, unit: u.s}}, nil
		}
		if u, ok := calendarUnits[p.peek().s]; ok && p.peek().kind == 'i' { // 18 years
			p.next()
			return &fpNode{op: "lit", lit: fpValue{k: fpQty, n: f, unit: u}}, nil
		}
		return &fpNode{op: "lit", lit: fpValue{k: k, n: f, s: t.s}}, nil
	case 'd':
		p.next()
		return &fpNode{op: "lit", lit: fpValue{k: fpStr, s: strings.TrimPrefix(t.s, "T")}}, nil
	case 'v':
		p.next()
		if p.peek().kind == 'o' && p.peek().s == "(" {
			// %name(args): an environment function (see ExprOptions.Funcs).
			p.i--
			p.toks[p.i].kind = 'i' // the token list is this parse's own
			return p.invocation()
		}
		return &fpNode{op: "var", name: t.s}, nil
	case 'i':
		switch t.s {
		case "true", "false":
			p.next()
			return &fpNode{op: "lit", lit: fpValue{k: fpBool, b: t.s == "true"}}, nil
		}
		return p.invocation()
	case 'o':
		switch t.s {
		case "(":
			p.next()
			n, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			if p.next().s != ")" {
				return nil, fmt.Errorf("expected )")
			}
			return n, nil
		case "{":
			p.next()
			if p.next().s != "}" {
				return nil, fmt.Errorf("expected }")
			}
			return &fpNode{op: "empty"}, nil
		}
	}
	return nil, fmt.Errorf("unexpected %q", t.s)
}

var fpFuncs = map[string]bool{
	"empty": true, "exists": true, "not": true, "all": true, "count": true, "isDistinct": true,
	"distinct": true, "select": true, "where": true, "first": true, "last": true, "tail": true,
	"skip": true, "take": true, "single": true, "startsWith": true, "endsWith": true,
	"contains": true, "matches": true, "replaceMatches": true, "replace": true, "length": true,
	"substring": true, "lower": true, "upper": true, "toInteger": true, "toString": true,
	"toDecimal": true, "hasValue": true, "trace": true, "descendants": true, "children": true,
	"resolve": true, "is": true, "as": true, "ofType": true, "iif": true, "extension": true,
	"htmlChecks": true, "memberOf": true, "intersect": true, "combine": true, "union": true,
	"subsetOf": true, "supersetOf": true, "allTrue": true, "anyTrue": true, "allFalse": true,
	"anyFalse": true, "exclude": true, "today": true, "now": true, "conformsTo": true,
	"indexOf": true, "join": true, "getValue": true, "repeat": true, "trim": true,
	"convertsToInteger": true, "convertsToDecimal": true, "convertsToString": true,
	"convertsToBoolean": true, "toBoolean": true, "split": true, "lastIndexOf": true,
	"hasTemplateIdOf": true, "encode": true, "decode": true, "comparable": true, "lowBoundary": true,
	"highBoundary": true, "toChars": true,
}

func checkFuncs(n *fpNode, extra func(string) bool) error {
	if n == nil {
		return nil
	}
	if n.op == "call" && !fpFuncs[n.name] && (extra == nil || !extra(n.name)) {
		return fmt.Errorf("unsupported function %s()", n.name)
	}
	for _, a := range n.args {
		if err := checkFuncs(a, extra); err != nil {
			return err
		}
	}
	if err := checkFuncs(n.l, extra); err != nil {
		return err
	}
	return checkFuncs(n.r, extra)
}

// ---- evaluation ----

type fpEnv struct {
	r        *Registry
	pkg      int
	resource *elem
	rootRes  *elem
	resolve  func(ref string, from *elem) *elem
	this     []fpValue
	index    int
	total    []fpValue
	// vars and funcs are the caller's environment variables and functions
	// (Expr.Eval); seen, when set, collects the elements the expression
	// compared or tested outside iterations (the evidence it used).
	vars  map[string][]fpValue
	funcs map[string]ExprFunc
	seen  *[]*elem
	depth int
}

// note records the elements of c as evidence (see fpEnv.seen).
func (env *fpEnv) note(c []fpValue) {
	if env.seen == nil || env.depth > 0 {
		return
	}
	for _, v := range c {
		if v.k == fpElem && v.e != nil {
			*env.seen = append(*env.seen, v.e)
		}
	}
}

var errFP = fmt.Errorf("FHIRPath evaluation error")

func (env *fpEnv) eval(n *fpNode, in []fpValue) ([]fpValue, error) {
	switch n.op {
	case "lit":
		return []fpValue{n.lit}, nil
	case "empty":
		return nil, nil
	case "this":
		if n.l != nil {
			return env.eval(n.l, in)
		}
		return env.this, nil
	case "index":
		return []fpValue{{k: fpInt, n: float64(env.index)}}, nil
	case "total":
		return env.total, nil
	case "var":
		if v, ok := env.vars[n.name]; ok {
			return v, nil
		}
		switch n.name {
		case "resource":
			return []fpValue{{e: env.resource}}, nil
		case "rootResource":
			return []fpValue{{e: env.rootRes}}, nil
		case "context":
			return env.this, nil
		case "ucum":
			return []fpValue{{k: fpStr, s: "http://unitsofmeasure.org"}}, nil
		case "sct":
			return []fpValue{{k: fpStr, s: "http://snomed.info/sct"}}, nil
		case "loinc":
			return []fpValue{{k: fpStr, s: "http://loinc.org"}}, nil
		}
		if strings.HasPrefix(n.name, "vs-") {
			return []fpValue{{k: fpStr, s: "http://hl7.org/fhir/ValueSet/" + n.name[3:]}}, nil
		}
		if strings.HasPrefix(n.name, "ext-") {
			return []fpValue{{k: fpStr, s: "http://hl7.org/fhir/StructureDefinition/" + n.name[4:]}}, nil
		}
		return nil, fmt.Errorf("unknown variable %%%s", n.name)
	case "id":
		src := in
		if n.l != nil {
			var err error
			if src, err = env.eval(n.l, in); err != nil {
				return nil, err
			}
		}
		return env.member(src, n.name, n.l == nil), nil
	case "idx":
		l, err := env.eval(n.l, in)
		if err != nil {
			return nil, err
		}
		ix, err := env.eval(n.r, env.this)
		if err != nil || len(ix) != 1 {
			return nil, err
		}
		iv, _ := ix[0].prim()
		i := int(iv.n)
		if i < 0 || i >= len(l) {
			return nil, nil
		}
		return l[i : i+1], nil
	case "neg":
		l, err := env.eval(n.l, in)
		if err != nil || len(l) != 1 {
			return nil, err
		}
		v, _ := l[0].prim()
		v.n = -v.n
		return []fpValue{v}, nil
	case "bin":
		return env.binary(n, in)
	case "call":
		src := in
		if n.l != nil {
			var err error
			if src, err = env.eval(n.l, in); err != nil {
				return nil, err
			}
		}
		return env.call(n, src)
	}
	return nil, fmt.Errorf("bad node %s", n.op)
}

func (env *fpEnv) member(in []fpValue, name string, top bool) []fpValue {
	var out []fpValue
	if top && name != "" && name[0] >= 'A' && name[0] <= 'Z' {
		// A type name at the start filters the focus: Bundle.entry.
		matched := false
		for _, v := range in {
			if v.k == fpElem && (v.e.resType == name || v.e.typ == name) {
				out = append(out, v)
				matched = true
			}
		}
		if matched {
			return out
		}
	}
	for _, v := range in {
		if v.k != fpElem || v.e == nil {
			continue
		}
		for _, k := range v.e.kids {
			if k.fname == name || (k.choice == "" && k.name != name && choiceMatch(k.name, name)) {
				out = append(out, fpValue{e: k})
			}
		}
	}
	return out
}

// choiceMatch reports whether JSON name jn is name+Type for a choice
// element the walker has not annotated (valueString for value).
func choiceMatch(jn, name string) bool {
	if len(jn) <= len(name) || !strings.HasPrefix(jn, name) {
		return false
	}
	c := jn[len(name)]
	return c >= 'A' && c <= 'Z' && fhirTypeSuffix[jn[len(name):]]
}

var fhirTypeSuffix = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range strings.Fields(`Base64Binary Boolean Canonical Code Date DateTime Decimal Id Instant Integer Markdown Oid PositiveInt String Time UnsignedInt Uri Url Uuid Address Age Annotation Attachment CodeableConcept Coding ContactPoint Count Distance Duration HumanName Identifier Money Period Quantity Range Ratio Reference SampledData Signature Timing ContactDetail Contributor DataRequirement Expression ParameterDefinition RelatedArtifact TriggerDefinition UsageContext Dosage Meta`) {
		m[t] = true
	}
	return m
}()

func toBool(c []fpValue) (val, ok bool) {
	if len(c) == 0 {
		return false, false
	}
	if len(c) == 1 {
		v, isPrim := c[0].prim()
		if isPrim && v.k == fpBool {
			return v.b, true
		}
		return true, true
	}
	return true, true
}

func boolVal(b bool) []fpValue { return []fpValue{{k: fpBool, b: b}} }

func (env *fpEnv) binary(n *fpNode, in []fpValue) ([]fpValue, error) {
	l, err := env.eval(n.l, in)
	if err != nil {
		return nil, err
	}
	switch n.name {
	case "and", "or", "xor", "implies":
		lb, lok := toBool(l)
		if n.name == "and" && lok && !lb {
			return boolVal(false), nil
		}
		if n.name == "or" && lok && lb {
			return boolVal(true), nil
		}
		if n.name == "implies" && lok && !lb {
			return boolVal(true), nil
		}
		r, err := env.eval(n.r, in)
		if err != nil {
			return nil, err
		}
		rb, rok := toBool(r)
		switch n.name {
		case "and":
			if rok && !rb {
				return boolVal(false), nil
			}
			if lok && rok {
				return boolVal(true), nil
			}
		case "or":
			if rok && rb {
				return boolVal(true), nil
			}
			if lok && rok {
				return boolVal(false), nil
			}
		case "xor":
			if lok && rok {
				return boolVal(lb != rb), nil
			}
		case "implies":
			if rok && rb {
				return boolVal(true), nil
			}
			if lok && rok {
				return boolVal(false), nil
			}
		}
		return nil, nil
	}
	r, err := env.eval(n.r, in)
	if err != nil {
		return nil, err
	}
	switch n.name {
	case "in", "contains", "=", "!=", "~", "!~", "<", ">", "<=", ">=":
		env.note(l)
		env.note(r)
	}
	switch n.name {
	case "|":
		return union(l, r), nil
	case "in":
		if len(l) == 0 {
			return nil, nil
		}
		for _, x := range r {
			if equal(l[0], x) {
				return boolVal(true), nil
			}
		}
		return boolVal(false), nil
	case "contains":
		if len(r) == 0 {
			return nil, nil
		}
		for _, x := range l {
			if equal(r[0], x) {
				return boolVal(true), nil
			}
		}
		return boolVal(false), nil
	case "=", "!=":
		if len(l) == 0 || len(r) == 0 {
			return nil, nil
		}
		eq := len(l) == len(r)
		for i := 0; eq && i < len(l); i++ {
			eq = equal(l[i], r[i])
		}
		return boolVal(eq == (n.name == "=")), nil
	case "~", "!~":
		if len(l) == 0 && len(r) == 0 {
			return boolVal(n.name == "~"), nil
		}
		eq := len(l) == len(r)
		for i := 0; eq && i < len(l); i++ {
			eq = equivalent(l[i], r[i])
		}
		return boolVal(eq == (n.name == "~")), nil
	}
	if n.name == "&" {
		str := func(c []fpValue) string {
			if len(c) == 0 {
				return ""
			}
			p, _ := c[0].prim()
			if p.k == fpInt || p.k == fpDec {
				return strconv.FormatFloat(p.n, 'f', -1, 64)
			}
			return p.s
		}
		return []fpValue{{k: fpStr, s: str(l) + str(r)}}, nil
	}
	if len(l) != 1 || len(r) != 1 {
		return nil, nil
	}
	a, aok := l[0].prim()
	b, bok := r[0].prim()
	if !aok || !bok {
		if l[0].k == fpElem && l[0].e.prim == nil && (n.name == "<" || n.name == ">" || n.name == "<=" || n.name == ">=") {
			// Quantity comparison: compare values.
			a = quantityOf(l[0])
			b = quantityOf(r[0])
		} else {
			return nil, nil
		}
	}
	if (n.name == "+" || n.name == "-") && a.k == fpStr && b.k == fpQty && looksTemporal(a.s) {
		if n.name == "-" {
			b.n = -b.n
		}
		if d, ok := dateAdd(a.s, b); ok {
			return []fpValue{{k: fpStr, s: d}}, nil
		}
		return nil, nil
	}
	switch n.name {
	case "&":
		return []fpValue{{k: fpStr, s: a.s + b.s}}, nil
	case "+":
		if a.k == fpStr && b.k == fpStr {
			return []fpValue{{k: fpStr, s: a.s + b.s}}, nil
		}
		return []fpValue{numVal(a.n+b.n, a.k, b.k)}, nil
	case "-":
		return []fpValue{numVal(a.n-b.n, a.k, b.k)}, nil
	case "*":
		return []fpValue{numVal(a.n*b.n, a.k, b.k)}, nil
	case "/":
		if b.n == 0 {
			return nil, nil
		}
		return []fpValue{{k: fpDec, n: a.n / b.n}}, nil
	case "div":
		if b.n == 0 {
			return nil, nil
		}
		return []fpValue{{k: fpInt, n: math.Trunc(a.n / b.n)}}, nil
	case "mod":
		if b.n == 0 {
			return nil, nil
		}
		return []fpValue{{k: fpInt, n: math.Mod(a.n, b.n)}}, nil
	case "<", ">", "<=", ">=":
		c, ok := compare(a, b)
		if !ok {
			return nil, nil
		}
		switch n.name {
		case "<":
			return boolVal(c < 0), nil
		case ">":
			return boolVal(c > 0), nil
		case "<=":
			return boolVal(c <= 0), nil
		default:
			return boolVal(c >= 0), nil
		}
	}
	return nil, fmt.Errorf("unsupported operator %s", n.name)
}

// calendarUnits are the FHIRPath calendar duration keywords (18 years).
var calendarUnits = map[string]string{
	"year": "year", "years": "year", "month": "month", "months": "month",
	"week": "week", "weeks": "week", "day": "day", "days": "day",
}

// dateAdd adds a calendar quantity (whole years, months, weeks or days;
// UCUM a, mo, wk, d too) to a date or dateTime string, keeping its
// precision. Units finer than the date's precision are refused.
func dateAdd(date string, q fpValue) (string, bool) {
	if q.n != math.Trunc(q.n) {
		return "", false
	}
	n := int(q.n)
	var y, m, d int
	switch q.unit {
	case "year", "a":
		y = n
	case "month", "mo":
		m = n
	case "week", "wk":
		d = 7 * n
	case "day", "d":
		d = n
	default:
		return "", false
	}
	layout, rest := "2006-01-02", ""
	switch {
	case len(date) == 4:
		layout = "2006"
	case len(date) == 7:
		layout = "2006-01"
	case len(date) > 10:
		date, rest = date[:10], date[10:]
	}
	t, err := time.Parse(layout, date)
	if err != nil || (layout == "2006" && (m != 0 || d != 0)) || (layout == "2006-01" && d != 0) {
		return "", false
	}
	return t.AddDate(y, m, d).Format(layout) + rest, true
}

func quantityOf(v fpValue) fpValue {
	if v.k == fpElem && v.e != nil {
		if x := v.e.first("value"); x != nil {
			p, _ := fpValue{e: x}.prim()
			return p
		}
	}
	p, _ := v.prim()
	return p
}

func numVal(f float64, a, b fpKind) fpValue {
	if a == fpInt && b == fpInt {
		return fpValue{k: fpInt, n: f}
	}
	return fpValue{k: fpDec, n: f}
}

func compare(a, b fpValue) (int, bool) {
	isNum := func(k fpKind) bool { return k == fpInt || k == fpDec || k == fpQty }
	if isNum(a.k) && isNum(b.k) {
		switch {
		case a.n < b.n:
			return -1, true
		case a.n > b.n:
			return 1, true
		}
		return 0, true
	}
	if a.k == fpStr && b.k == fpStr {
		// Dates and times of the same precision compare as strings;
		// differing precisions are indeterminate unless decided by the
		// common prefix.
		as, bs := a.s, b.s
		if looksTemporal(as) && looksTemporal(bs) && len(as) != len(bs) {
			n := min(len(as), len(bs))
			if c := strings.Compare(as[:n], bs[:n]); c != 0 {
				return c, true
			}
			return 0, false
		}
		return strings.Compare(as, bs), true
	}
	return 0, false
}

func looksTemporal(s string) bool {
	return len(s) >= 4 && s[0] >= '0' && s[0] <= '9' && (len(s) == 4 || s[4] == '-' || s[2] == ':')
}

func equal(a, b fpValue) bool {
	ap, aok := a.prim()
	bp, bok := b.prim()
	if aok && bok {
		if (ap.k == fpInt || ap.k == fpDec) && (bp.k == fpInt || bp.k == fpDec) {
			return ap.n == bp.n
		}
		if ap.k != bp.k {
			return false
		}
		switch ap.k {
		case fpStr:
			return ap.s == bp.s
		case fpBool:
			return ap.b == bp.b
		case fpQty:
			return ap.n == bp.n && ap.unit == bp.unit
		}
		return false
	}
	if a.k == fpElem && b.k == fpElem && !aok && !bok {
		return a.e == b.e || elemKey(a.e) == elemKey(b.e)
	}
	return false
}

func equivalent(a, b fpValue) bool {
	ap, aok := a.prim()
	bp, bok := b.prim()
	if aok && bok && ap.k == fpStr && bp.k == fpStr {
		return strings.EqualFold(strings.Join(strings.Fields(ap.s), " "), strings.Join(strings.Fields(bp.s), " "))
	}
	return equal(a, b)
}

// elemKey renders a subtree canonically for deep equality.
func elemKey(e *elem) string {
	var b strings.Builder
	var w func(e *elem)
	w = func(e *elem) {
		if e.prim != nil {
			b.WriteString(e.prim.s)
		}
		b.WriteByte('{')
		for _, k := range e.kids {
			if k.fname == "id" || k.fname == "extension" {
				continue
			}
			b.WriteString(k.name)
			b.WriteByte(':')
			w(k)
			b.WriteByte(',')
		}
		b.WriteByte('}')
	}
	w(e)
	return b.String()
}

func union(l, r []fpValue) []fpValue {
	var out []fpValue
	for _, x := range append(append([]fpValue{}, l...), r...) {
		dup := false
		for _, y := range out {
			if equal(x, y) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, x)
		}
	}
	return out
}

func (env *fpEnv) withThis(v fpValue, i int, f func() ([]fpValue, error)) ([]fpValue, error) {
	saved, savedI := env.this, env.index
	env.this, env.index = []fpValue{v}, i
	env.depth++
	out, err := f()
	env.depth--
	env.this, env.index = saved, savedI
	return out, err
}

func (env *fpEnv) argStr(n *fpNode, i int) (string, bool) {
	if i >= len(n.args) {
		return "", false
	}
	v, err := env.eval(n.args[i], env.this)
	if err != nil || len(v) != 1 {
		return "", false
	}
	p, ok := v[0].prim()
	if !ok {
		return "", false
	}
	if p.k == fpInt || p.k == fpDec {
		return strconv.FormatFloat(p.n, 'f', -1, 64), true
	}
	return p.s, true
}

func (env *fpEnv) argInt(n *fpNode, i int) (int, bool) {
	if i >= len(n.args) {
		return 0, false
	}
	v, err := env.eval(n.args[i], env.this)
	if err != nil || len(v) != 1 {
		return 0, false
	}
	p, _ := v[0].prim()
	return int(p.n), p.k == fpInt || p.k == fpDec
}

func singletonStr(in []fpValue) (string, bool) {
	if len(in) != 1 {
		return "", false
	}
	p, ok := in[0].prim()
	if !ok || p.k != fpStr {
		if ok && (p.k == fpInt || p.k == fpDec) {
			return p.s, true
		}
		return "", false
	}
	return p.s, true
}

var reCache sync.Map

func compileRe(s string) (*regexp.Regexp, error) {
	if r, ok := reCache.Load(s); ok {
		return r.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, err
	}
	reCache.Store(s, re)
	return re, nil
}

func typeMatches(v fpValue, t string) bool {
	t = strings.TrimPrefix(strings.TrimPrefix(t, "FHIR."), "System.")
	tn := v.typeName()
	if tn == "" {
		return false
	}
	if strings.EqualFold(tn, t) {
		return true
	}
	if v.k == fpElem && v.e.resType != "" && (t == "Resource" || t == "DomainResource") {
		return true
	}
	return false
}

func (env *fpEnv) call(n *fpNode, in []fpValue) ([]fpValue, error) {
	if f := env.funcs[n.name]; f != nil {
		args := make([]string, len(n.args))
		for i := range n.args {
			args[i], _ = env.argStr(n, i)
		}
		var out []fpValue
		for _, e := range f(args) {
			out = append(out, fpValue{e: e.e})
		}
		return out, nil
	}
	switch n.name {
	case "empty":
		env.note(in)
		return boolVal(len(in) == 0), nil
	case "exists":
		if len(n.args) == 0 {
			env.note(in)
			return boolVal(len(in) > 0), nil
		}
		for i, v := range in {
			r, err := env.withThis(v, i, func() ([]fpValue, error) { return env.eval(n.args[0], []fpValue{v}) })
			if err != nil {
				return nil, err
			}
			if b, ok := toBool(r); ok && b {
				env.note([]fpValue{v})
				return boolVal(true), nil
			}
		}
		return boolVal(false), nil
	case "not":
		b, ok := toBool(in)
		if !ok {
			return nil, nil
		}
		return boolVal(!b), nil
	case "all":
		for i, v := range in {
			r, err := env.withThis(v, i, func() ([]fpValue, error) { return env.eval(n.args[0], []fpValue{v}) })
			if err != nil {
				return nil, err
			}
			if b, ok := toBool(r); !ok || !b {
				return boolVal(false), nil
			}
		}
		return boolVal(true), nil
	case "allTrue", "anyTrue", "allFalse", "anyFalse":
		want := n.name == "allTrue" || n.name == "anyTrue"
		any := strings.HasPrefix(n.name, "any")
		for _, v := range in {
			p, _ := v.prim()
			if any && p.k == fpBool && p.b == want {
				return boolVal(true), nil
			}
			if !any && (p.k != fpBool || p.b != want) {
				return boolVal(false), nil
			}
		}
		return boolVal(!any), nil
	case "count":
		env.note(in)
		return []fpValue{{k: fpInt, n: float64(len(in))}}, nil
	case "isDistinct":
		return boolVal(len(union(in, nil)) == len(in)), nil
	case "distinct":
		return union(in, nil), nil
	case "where", "select", "repeat":
		var out []fpValue
		for i, v := range in {
			r, err := env.withThis(v, i, func() ([]fpValue, error) { return env.eval(n.args[0], []fpValue{v}) })
			if err != nil {
				return nil, err
			}
			if n.name == "where" {
				if b, ok := toBool(r); ok && b {
					out = append(out, v)
				}
			} else {
				out = append(out, r...)
			}
		}
		if n.name == "repeat" && len(out) > 0 {
			more, err := env.call(n, out)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		}
		return out, nil
	case "first":
		if len(in) == 0 {
			return nil, nil
		}
		return in[:1], nil
	case "last":
		if len(in) == 0 {
			return nil, nil
		}
		return in[len(in)-1:], nil
	case "tail":
		if len(in) == 0 {
			return nil, nil
		}
		return in[1:], nil
	case "skip", "take":
		k, _ := env.argInt(n, 0)
		k = max(0, min(k, len(in)))
		if n.name == "skip" {
			return in[k:], nil
		}
		return in[:k], nil
	case "single":
		if len(in) > 1 {
			return nil, fmt.Errorf("single() on %d items", len(in))
		}
		return in, nil
	case "iif":
		c, err := env.eval(n.args[0], env.this)
		if err != nil {
			return nil, err
		}
		if b, ok := toBool(c); ok && b {
			return env.eval(n.args[1], env.this)
		}
		if len(n.args) > 2 {
			return env.eval(n.args[2], env.this)
		}
		return nil, nil
	case "is", "as", "ofType":
		t := n.args[0].name
		if n.args[0].op != "type" && n.args[0].op == "id" {
			t = n.args[0].name
		}
		if n.name == "is" {
			if len(in) != 1 {
				return nil, nil
			}
			return boolVal(typeMatches(in[0], t)), nil
		}
		var out []fpValue
		for _, v := range in {
			if typeMatches(v, t) {
				out = append(out, v)
			}
		}
		return out, nil
	case "hasValue":
		return boolVal(len(in) == 1 && in[0].k == fpElem && in[0].e.prim != nil), nil
	case "getValue":
		if len(in) == 1 && in[0].k == fpElem && in[0].e.prim != nil {
			p, _ := in[0].prim()
			return []fpValue{p}, nil
		}
		return nil, nil
	case "children", "descendants":
		var out []fpValue
		var walk func(e *elem)
		walk = func(e *elem) {
			for _, k := range e.kids {
				out = append(out, fpValue{e: k})
				if n.name == "descendants" {
					walk(k)
				}
			}
		}
		for _, v := range in {
			if v.k == fpElem {
				walk(v.e)
			}
		}
		return out, nil
	case "extension":
		url, _ := env.argStr(n, 0)
		var out []fpValue
		for _, v := range in {
			if v.k != fpElem {
				continue
			}
			for _, k := range v.e.kids {
				if k.fname == "extension" && k.str("url") == url {
					out = append(out, fpValue{e: k})
				}
			}
		}
		return out, nil
	case "resolve":
		var out []fpValue
		for _, v := range in {
			ref := ""
			if v.k == fpElem && v.e.prim == nil {
				ref = v.e.str("reference")
			} else if p, ok := v.prim(); ok {
				ref = p.s
			}
			if ref == "" || env.resolve == nil {
				continue
			}
			if t := env.resolve(ref, v.e); t != nil {
				out = append(out, fpValue{e: t})
			}
		}
		return out, nil
	case "htmlChecks", "conformsTo", "hasTemplateIdOf", "comparable":
		return boolVal(true), nil
	case "trace":
		return in, nil
	case "today", "now":
		t := time.Now().UTC()
		if n.name == "today" {
			return []fpValue{{k: fpStr, s: t.Format("2006-01-02")}}, nil
		}
		return []fpValue{{k: fpStr, s: t.Format(time.RFC3339)}}, nil
	case "memberOf":
		url, _ := env.argStr(n, 0)
		if len(in) != 1 || env.r == nil {
			return nil, nil
		}
		vs := env.r.valueSet(url, env.pkg)
		if !vs.found {
			return nil, nil
		}
		v := in[0]
		var codings []*elem
		if v.k == fpElem && v.e.prim == nil {
			if v.e.first("coding") != nil {
				codings = v.e.child("coding")
			} else {
				codings = []*elem{v.e}
			}
			for _, c := range codings {
				if vs.contains(c.str("system"), c.str("code")) != memberNo {
					return boolVal(true), nil
				}
			}
			return boolVal(false), nil
		}
		s, _ := singletonStr(in)
		return boolVal(vs.contains("", s) != memberNo), nil
	case "intersect", "exclude", "combine", "union", "subsetOf", "supersetOf":
		other, err := env.eval(n.args[0], env.this)
		if err != nil {
			return nil, err
		}
		switch n.name {
		case "combine":
			return append(append([]fpValue{}, in...), other...), nil
		case "union":
			return union(in, other), nil
		}
		has := func(c []fpValue, x fpValue) bool {
			for _, y := range c {
				if equal(x, y) {
					return true
				}
			}
			return false
		}
		var out []fpValue
		switch n.name {
		case "intersect", "exclude":
			for _, x := range in {
				if has(other, x) == (n.name == "intersect") {
					out = append(out, x)
				}
			}
			if n.name == "intersect" {
				out = union(out, nil)
			}
			return out, nil
		case "subsetOf":
			for _, x := range in {
				if !has(other, x) {
					return boolVal(false), nil
				}
			}
			return boolVal(true), nil
		default:
			for _, x := range other {
				if !has(in, x) {
					return boolVal(false), nil
				}
			}
			return boolVal(true), nil
		}
	}
	// String functions on a singleton.
	if len(in) == 0 {
		return nil, nil
	}
	s, ok := singletonStr(in)
	if !ok {
		if n.name == "toString" && len(in) == 1 {
			if p, ok := in[0].prim(); ok {
				if p.k == fpBool {
					return []fpValue{{k: fpStr, s: strconv.FormatBool(p.b)}}, nil
				}
			}
		}
		if strings.HasPrefix(n.name, "convertsTo") {
			return boolVal(false), nil
		}
		if len(in) == 1 {
			p, pok := in[0].prim()
			if pok && (n.name == "toInteger" || n.name == "toDecimal") && (p.k == fpInt || p.k == fpDec) {
				return []fpValue{p}, nil
			}
			if pok && p.k == fpBool && n.name == "toBoolean" {
				return []fpValue{p}, nil
			}
		}
		return nil, nil
	}
	switch n.name {
	case "startsWith", "endsWith", "contains", "indexOf", "lastIndexOf":
		a, ok := env.argStr(n, 0)
		if !ok {
			return nil, nil
		}
		switch n.name {
		case "startsWith":
			return boolVal(strings.HasPrefix(s, a)), nil
		case "endsWith":
			return boolVal(strings.HasSuffix(s, a)), nil
		case "contains":
			return boolVal(strings.Contains(s, a)), nil
		case "indexOf":
			return []fpValue{{k: fpInt, n: float64(strings.Index(s, a))}}, nil
		default:
			return []fpValue{{k: fpInt, n: float64(strings.LastIndex(s, a))}}, nil
		}
	case "matches":
		a, ok := env.argStr(n, 0)
		if !ok {
			return nil, nil
		}
		re, err := compileRe("^(?s:" + a + ")$")
		if err != nil {
			return nil, err
		}
		return boolVal(re.MatchString(s)), nil
	case "replaceMatches":
		a, ok1 := env.argStr(n, 0)
		b, ok2 := env.argStr(n, 1)
		if !ok1 || !ok2 {
			return nil, nil
		}
		re, err := compileRe(a)
		if err != nil {
			return nil, err
		}
		return []fpValue{{k: fpStr, s: re.ReplaceAllString(s, b)}}, nil
	case "replace":
		a, _ := env.argStr(n, 0)
		b, _ := env.argStr(n, 1)
		return []fpValue{{k: fpStr, s: strings.ReplaceAll(s, a, b)}}, nil
	case "length":
		return []fpValue{{k: fpInt, n: float64(len([]rune(s)))}}, nil
	case "substring":
		st, _ := env.argInt(n, 0)
		rs := []rune(s)
		if st < 0 || st >= len(rs) {
			return nil, nil
		}
		end := len(rs)
		if l, ok := env.argInt(n, 1); ok {
			end = min(len(rs), st+max(0, l))
		}
		return []fpValue{{k: fpStr, s: string(rs[st:end])}}, nil
	case "lower":
		return []fpValue{{k: fpStr, s: strings.ToLower(s)}}, nil
	case "upper":
		return []fpValue{{k: fpStr, s: strings.ToUpper(s)}}, nil
	case "trim":
		return []fpValue{{k: fpStr, s: strings.TrimSpace(s)}}, nil
	case "toString", "convertsToString":
		if n.name == "convertsToString" {
			return boolVal(true), nil
		}
		return []fpValue{{k: fpStr, s: s}}, nil
	case "toInteger", "convertsToInteger":
		i, err := strconv.Atoi(s)
		if n.name == "convertsToInteger" {
			return boolVal(err == nil), nil
		}
		if err != nil {
			return nil, nil
		}
		return []fpValue{{k: fpInt, n: float64(i)}}, nil
	case "toDecimal", "convertsToDecimal":
		f, err := strconv.ParseFloat(s, 64)
		if n.name == "convertsToDecimal" {
			return boolVal(err == nil), nil
		}
		if err != nil {
			return nil, nil
		}
		return []fpValue{{k: fpDec, n: f}}, nil
	case "toBoolean", "convertsToBoolean":
		b, err := strconv.ParseBool(s)
		if n.name == "convertsToBoolean" {
			return boolVal(err == nil), nil
		}
		if err != nil {
			return nil, nil
		}
		return boolVal(b), nil
	case "split":
		a, _ := env.argStr(n, 0)
		var out []fpValue
		for _, p := range strings.Split(s, a) {
			out = append(out, fpValue{k: fpStr, s: p})
		}
		return out, nil
	case "join":
		return in, nil
	case "toChars":
		var out []fpValue
		for _, c := range s {
			out = append(out, fpValue{k: fpStr, s: string(c)})
		}
		return out, nil
	case "lowBoundary", "highBoundary", "encode", "decode":
		return []fpValue{{k: fpStr, s: s}}, nil
	}
	return nil, fmt.Errorf("unsupported function %s()", n.name)
}
