package profiles

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A FHIRPath engine over the element tree (FHIRPath N1,
// https://hl7.org/fhirpath/N1/). The validator evaluates the invariants of
// R4 core, US Core, PAS, CRD and HRex with it (see VALIDATION-NOTES §2.1);
// other packages (policy criteria) use the exported API below. Evaluating
// on the shared tree avoids re-scanning JSON, which is what made
// github.com/gofhir/fhirpath cost ~55 ms per 50 KB Bundle.
//
// What it implements: navigation, indexers, every operator of N1 §6
// (boolean logic, equality and equivalence, comparison, membership, union,
// arithmetic on numbers, strings, quantities and dates, is/as), the
// functions listed in fpFuncTable (one table serves the parser's check and
// the dispatch), calendar-duration and UCUM quantity literals, date, time
// and dateTime literals with their partial precisions, and the FHIR
// additions extension(), hasValue(), getValue(), resolve() (contained
// resources and Bundle entries) and memberOf() (validator only). A
// function outside the table is a compile error "unsupported function";
// the engine never answers for a function it does not implement.
//
// Numbers are float64; decimal results are rounded to 15 significant digits
// so that 0.1 + 0.2 = 0.3. Unit conversion covers UCUM mass, length, volume
// and time units with SI prefixes in common clinical use; other units
// compare only with the same unit.

// FHIRPath is a compiled FHIRPath expression, safe for concurrent use:
// compile once with CompileFHIRPath and evaluate many times.
//
//	expr, err := profiles.CompileFHIRPath(
//	    "%patient.birthDate <= %today - 18 years and questionnaireResponse('http://x/q').exists()",
//	    "questionnaireResponse")
//	claim, _ := profiles.ParseResource(claimJSON)
//	ok, defined, err := expr.EvaluateBool([]profiles.Value{claim}, &profiles.FHIRPathEnv{
//	    Vars:  map[string][]profiles.Value{"patient": {patient}, "today": {profiles.DateValue(time.Now())}},
//	    Funcs: map[string]profiles.FHIRPathFunc{"questionnaireResponse": lookupQR},
//	})
//
// The focus collection is the input of the expression and also %context;
// %resource and %rootResource are the resource containing the first focus
// item unless Vars sets them. Vars supplies %name variables (name without
// the %); %ucum, %sct, %loinc, %vs-x and %ext-x are predefined.
type FHIRPath struct {
	src  string
	node *fpNode
}

// FHIRPathFunc is a user-defined function, called as name(args...) or
// input.name(args...). input is the collection the function is invoked on
// (the focus when called without one); each argument expression has been
// evaluated once against the same focus. It returns the result collection,
// or an error that ends the evaluation.
type FHIRPathFunc func(input []Value, args [][]Value) ([]Value, error)

// FHIRPathEnv is what one evaluation sees besides its focus. A nil
// *FHIRPathEnv is an empty one.
type FHIRPathEnv struct {
	Vars  map[string][]Value      // %name → collection; names are given without the %
	Funcs map[string]FHIRPathFunc // implementations of the names given to CompileFHIRPath
	Now   time.Time               // now(), today() and timeOfDay(); the zero time means the clock
}

// CompileFHIRPath parses expr. funcs names the user-defined functions the
// expression may call (their implementations come with each evaluation in
// FHIRPathEnv.Funcs); any other function outside the engine's table is an
// "unsupported function" error. A user function may not shadow a built-in.
func CompileFHIRPath(expr string, funcs ...string) (*FHIRPath, error) {
	user := map[string]bool{}
	for _, f := range funcs {
		if _, ok := fpFuncTable[f]; ok {
			return nil, fmt.Errorf("function %s() is built in", f)
		}
		user[f] = true
	}
	n, err := parseFHIRPath(expr, user)
	if err != nil {
		return nil, fmt.Errorf("FHIRPath %q: %w", expr, err)
	}
	return &FHIRPath{src: expr, node: n}, nil
}

// String returns the expression's source text.
func (p *FHIRPath) String() string { return p.src }

// Evaluate evaluates the expression on the focus collection.
func (p *FHIRPath) Evaluate(focus []Value, env *FHIRPathEnv) ([]Value, error) {
	in := make([]fpValue, len(focus))
	for i, v := range focus {
		in[i] = v.v
	}
	e := &fpEnv{this: in, user: env}
	if env != nil {
		e.now = env.Now
	}
	if len(in) > 0 && in[0].k == fpElem && in[0].e != nil {
		e.resource = in[0].e.resource()
		if e.resource != nil {
			e.rootRes = e.resource.root().resource()
		}
		e.resolve = standaloneResolver()
	}
	out, err := e.eval(p.node, in)
	if err != nil {
		return nil, fmt.Errorf("FHIRPath %q: %w", p.src, err)
	}
	res := make([]Value, len(out))
	for i, v := range out {
		res[i] = Value{v}
	}
	return res, nil
}

// EvaluateBool evaluates the expression as a boolean with FHIRPath's
// singleton evaluation (N1 §4.5): defined is false when the result is
// empty; a single non-Boolean item is true; more than one item is an error.
func (p *FHIRPath) EvaluateBool(focus []Value, env *FHIRPathEnv) (value, defined bool, err error) {
	out, err := p.Evaluate(focus, env)
	if err != nil {
		return false, false, err
	}
	if len(out) > 1 {
		return false, false, fmt.Errorf("FHIRPath %q: %d items where one Boolean was expected", p.src, len(out))
	}
	in := []fpValue{}
	for _, v := range out {
		in = append(in, v.v)
	}
	value, defined = toBool(in)
	return value, defined, nil
}

// standaloneResolver resolves references within the tree of the referring
// element: contained resources ("#id") and the entries of an enclosing
// Bundle (fullUrl or Type/id), as the validator does.
func standaloneResolver() func(ref string, from *elem) *elem {
	x := &run{bundles: map[*elem]*bundleIdx{}}
	indexed := map[*elem]bool{}
	return func(ref string, from *elem) *elem {
		if from == nil {
			return nil
		}
		if root := from.root(); !indexed[root] {
			indexed[root] = true
			var walk func(e *elem)
			walk = func(e *elem) {
				if e.resType == "Bundle" {
					x.indexBundle(e)
				}
				for _, k := range e.kids {
					walk(k)
				}
			}
			walk(root)
		}
		return x.resolveRef(ref, from)
	}
}

// Value is one item of a FHIRPath collection: an element or resource of a
// parsed instance, or a System value (String, Boolean, Integer, Decimal,
// Date, DateTime, Time, Quantity).
type Value struct{ v fpValue }

// ParseResource decodes a FHIR resource (JSON) into a Value for use as a
// focus or a variable. Decode once, evaluate many times.
func ParseResource(data []byte) (Value, error) {
	v, err := parseJSON(data)
	if err != nil {
		return Value{}, err
	}
	root, err := buildTree(v)
	if err != nil {
		return Value{}, err
	}
	return Value{fpValue{e: root}}, nil
}

// StringValue, BooleanValue, IntegerValue, DecimalValue and QuantityValue
// make System values; unit is a UCUM code or a calendar duration ("year").
func StringValue(s string) Value   { return Value{fpValue{k: fpStr, s: s}} }
func BooleanValue(b bool) Value    { return Value{fpValue{k: fpBool, b: b}} }
func IntegerValue(i int64) Value   { return Value{fpValue{k: fpInt, n: float64(i)}} }
func DecimalValue(f float64) Value { return Value{fpValue{k: fpDec, n: f}} }
func QuantityValue(f float64, unit string) Value {
	return Value{fpValue{k: fpQty, n: f, unit: unit}}
}

// DateValue is the date of t (in t's location); DateTimeValue is t to the
// millisecond with its offset.
func DateValue(t time.Time) Value { return Value{fpValue{k: fpDate, s: t.Format("2006-01-02")}} }
func DateTimeValue(t time.Time) Value {
	return Value{fpValue{k: fpDateTime, s: t.Format("2006-01-02T15:04:05.000-07:00")}}
}

// ParseDateValue reads a FHIRPath/FHIR date, dateTime or time ("2024-05",
// "2024-05-01T10:00:00Z", "T10:30") keeping its precision.
func ParseDateValue(s string) (Value, error) {
	t, ok := parseTemporal(s)
	if !ok {
		return Value{}, fmt.Errorf("not a date, dateTime or time: %q", s)
	}
	return Value{t.value()}, nil
}

// Type is the value's type name: a System type ("String", "Date",
// "Quantity"), or the FHIR type or resource type of an element when known.
func (v Value) Type() string {
	if v.v.k == fpElem && v.v.e.typ == "" {
		if p, ok := v.v.prim(); ok {
			return p.typeName()
		}
	}
	return v.v.typeName()
}

// String renders the value: strings and System values as their text,
// quantities as `4 'mg'`, elements without a primitive value as JSON-like
// {name,...} keys.
func (v Value) String() string {
	p, ok := v.v.prim()
	if !ok {
		return "{" + v.v.e.name + "}"
	}
	return p.text()
}

// Bool returns the value of a Boolean (ok false for other types).
func (v Value) Bool() (b, ok bool) {
	p, isPrim := v.v.prim()
	if !isPrim || p.k != fpBool {
		return false, false
	}
	return p.b, true
}

// Number returns the value of an Integer, Decimal or Quantity and, for a
// Quantity, its unit.
func (v Value) Number() (n float64, unit string, ok bool) {
	p, isPrim := v.v.prim()
	if !isPrim {
		if q, isQ := quantityOf(v.v); isQ {
			return q.n, q.unit, true
		}
		return 0, "", false
	}
	switch p.k {
	case fpInt, fpDec, fpQty:
		return p.n, p.unit, true
	}
	return 0, "", false
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
	fpDate
	fpDateTime
	fpTime
)

type fpValue struct {
	k    fpKind
	e    *elem
	s    string // string value, decimal text as written, or date/time text without @
	n    float64
	b    bool
	unit string
}

// prim returns the System value of a primitive element (v itself for a
// System value); ok is false for complex elements.
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
		switch v.e.typ {
		case "date", "dateTime", "instant", "time":
			if t, ok := parseTemporal(p.s); ok {
				return t.value(), true
			}
		}
		return fpValue{k: fpStr, s: p.s}, true
	}
	return v, false
}

func (v fpValue) isNum() bool { return v.k == fpInt || v.k == fpDec }

func (v fpValue) isTemporal() bool { return v.k == fpDate || v.k == fpDateTime || v.k == fpTime }

// text renders a System value as toString() does.
func (v fpValue) text() string {
	switch v.k {
	case fpStr, fpDate, fpDateTime, fpTime:
		return v.s
	case fpBool:
		return strconv.FormatBool(v.b)
	case fpInt:
		return strconv.FormatFloat(v.n, 'f', -1, 64)
	case fpDec:
		if v.s != "" {
			return v.s
		}
		return strconv.FormatFloat(v.n, 'f', -1, 64)
	case fpQty:
		n := strconv.FormatFloat(v.n, 'f', -1, 64)
		if calendarUnits[v.unit] != "" {
			return n + " " + v.unit
		}
		return n + " '" + v.unit + "'"
	}
	return ""
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
	return [...]string{"", "String", "Integer", "Decimal", "Boolean", "Quantity", "Date", "DateTime", "Time"}[v.k]
}

type compiledExpr struct {
	node *fpNode
	err  error
}

// compileExpr compiles an invariant once per Registry.
func (r *Registry) compileExpr(expr string) (*fpNode, error) {
	if c, ok := r.exprs.Load(expr); ok {
		ce := c.(*compiledExpr)
		return ce.node, ce.err
	}
	n, err := parseFHIRPath(expr, nil)
	r.exprs.Store(expr, &compiledExpr{n, err})
	return n, err
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
				if src[j] == '.' && (j+1 >= len(src) || src[j+1] < '0' || src[j+1] > '9') {
					break // @2014.is(Date): the dot starts an invocation
				}
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
	toks  []fpTok
	i     int
	depth int
}

// maxFHIRPathLen bounds an expression's source; maxFHIRPathDepth its nesting.
const (
	maxFHIRPathLen   = 64 << 10
	maxFHIRPathDepth = 200
)

func parseFHIRPath(src string, user map[string]bool) (*fpNode, error) {
	if len(src) > maxFHIRPathLen {
		return nil, fmt.Errorf("expression longer than %d bytes", maxFHIRPathLen)
	}
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
	if err := checkFuncs(n, user, 0); err != nil {
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
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxFHIRPathDepth {
		return nil, fmt.Errorf("expression nested deeper than %d", maxFHIRPathDepth)
	}
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
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxFHIRPathDepth {
		return nil, fmt.Errorf("expression nested deeper than %d", maxFHIRPathDepth)
	}
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
		if u := p.peek(); u.kind == 'i' && calendarUnits[u.s] != "" { // 18 years
			p.next()
			return &fpNode{op: "lit", lit: fpValue{k: fpQty, n: f, unit: u.s}}, nil
		}
		return &fpNode{op: "lit", lit: fpValue{k: k, n: f, s: t.s}}, nil
	case 'd':
		p.next()
		tv, ok := parseTemporal(t.s)
		if !ok {
			return nil, fmt.Errorf("invalid date/time literal @%s", t.s)
		}
		return &fpNode{op: "lit", lit: tv.value()}, nil
	case 'v':
		p.next()
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

// checkFuncs rejects calls of functions outside fpFuncTable and user, and
// wrong argument counts, at compile time.
func checkFuncs(n *fpNode, user map[string]bool, depth int) error {
	if n == nil {
		return nil
	}
	if depth > 4*maxFHIRPathDepth {
		return fmt.Errorf("expression nested too deeply")
	}
	if n.op == "call" {
		f, ok := fpFuncTable[n.name]
		switch {
		case ok:
			if len(n.args) < f.min || len(n.args) > f.max {
				if f.min == f.max {
					return fmt.Errorf("%s() takes %d argument(s), not %d", n.name, f.min, len(n.args))
				}
				return fmt.Errorf("%s() takes %d to %d arguments, not %d", n.name, f.min, f.max, len(n.args))
			}
		case user[n.name]:
			n.op = "user"
		default:
			return fmt.Errorf("unsupported function %s()", n.name)
		}
	}
	for _, a := range n.args {
		if err := checkFuncs(a, user, depth+1); err != nil {
			return err
		}
	}
	if err := checkFuncs(n.l, user, depth+1); err != nil {
		return err
	}
	return checkFuncs(n.r, user, depth+1)
}
