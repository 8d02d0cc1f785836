package profiles

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ---- evaluation ----

type fpEnv struct {
	r        *Registry // for memberOf; nil outside the validator
	pkg      int
	resource *elem
	rootRes  *elem
	resolve  func(ref string, from *elem) *elem
	this     []fpValue
	index    int
	total    []fpValue
	user     *FHIRPathEnv
	now      time.Time
	steps    int
}

// maxFHIRPathSteps bounds the work of one evaluation (nodes evaluated,
// items produced by repeat()).
const maxFHIRPathSteps = 1 << 22

func (env *fpEnv) clock() time.Time {
	if env.now.IsZero() {
		env.now = time.Now()
	}
	return env.now
}

func (env *fpEnv) eval(n *fpNode, in []fpValue) ([]fpValue, error) {
	if env.steps++; env.steps > maxFHIRPathSteps {
		return nil, fmt.Errorf("evaluation exceeds %d steps", maxFHIRPathSteps)
	}
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
		return env.variable(n.name)
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
		if err != nil || len(ix) == 0 {
			return nil, err
		}
		iv, _ := ix[0].prim()
		if len(ix) != 1 || iv.k != fpInt {
			return nil, fmt.Errorf("an index must be one Integer")
		}
		i := int(iv.n)
		if i < 0 || i >= len(l) {
			return nil, nil
		}
		return l[i : i+1], nil
	case "neg":
		l, err := env.eval(n.l, in)
		if err != nil || len(l) == 0 {
			return nil, err
		}
		if len(l) > 1 {
			return nil, fmt.Errorf("unary - on %d items", len(l))
		}
		v, _ := l[0].prim()
		if q, ok := quantityOf(l[0]); ok {
			v = q
		}
		if !v.isNum() && v.k != fpQty {
			return nil, fmt.Errorf("unary - on a %s", v.typeName())
		}
		v.n, v.s = -v.n, ""
		return []fpValue{v}, nil
	case "bin":
		return env.binary(n, in)
	case "call", "user":
		src := in
		if n.l != nil {
			var err error
			if src, err = env.eval(n.l, in); err != nil {
				return nil, err
			}
		}
		if n.op == "user" {
			return env.callUser(n, src)
		}
		return fpFuncTable[n.name].fn(env, n, src)
	}
	return nil, fmt.Errorf("bad node %s", n.op)
}

func (env *fpEnv) variable(name string) ([]fpValue, error) {
	if env.user != nil {
		if vs, ok := env.user.Vars[name]; ok {
			out := make([]fpValue, len(vs))
			for i, v := range vs {
				out[i] = v.v
			}
			return out, nil
		}
	}
	switch name {
	case "resource":
		if env.resource == nil {
			return nil, nil
		}
		return []fpValue{{e: env.resource}}, nil
	case "rootResource":
		if env.rootRes == nil {
			return nil, nil
		}
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
	if strings.HasPrefix(name, "vs-") {
		return []fpValue{{k: fpStr, s: "http://hl7.org/fhir/ValueSet/" + name[3:]}}, nil
	}
	if strings.HasPrefix(name, "ext-") {
		return []fpValue{{k: fpStr, s: "http://hl7.org/fhir/StructureDefinition/" + name[4:]}}, nil
	}
	return nil, fmt.Errorf("unknown variable %%%s", name)
}

func (env *fpEnv) callUser(n *fpNode, in []fpValue) ([]fpValue, error) {
	var f FHIRPathFunc
	if env.user != nil {
		f = env.user.Funcs[n.name]
	}
	if f == nil {
		return nil, fmt.Errorf("function %s() has no implementation in this evaluation", n.name)
	}
	args := make([][]Value, len(n.args))
	for i, a := range n.args {
		v, err := env.eval(a, env.this)
		if err != nil {
			return nil, err
		}
		for _, x := range v {
			args[i] = append(args[i], Value{x})
		}
	}
	input := make([]Value, len(in))
	for i, v := range in {
		input[i] = Value{v}
	}
	out, err := f(input, args)
	if err != nil {
		return nil, fmt.Errorf("%s(): %w", n.name, err)
	}
	res := make([]fpValue, len(out))
	for i, v := range out {
		res[i] = v.v
	}
	return res, nil
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
			// An element the walker typed (typ set) is a choice only if
			// it said so (choice set): subscriberId is not subscriber[x].
			if k.fname == name || (k.choice == "" && k.typ == "" && k.name != name && choiceMatch(k.name, name)) {
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

// toBool is singleton evaluation of collections (N1 §4.5): empty is
// unknown; one Boolean is its value; one other item is true.
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
	case "|":
		return union(l, r), nil
	case "in", "contains":
		item, coll := l, r
		if n.name == "contains" {
			item, coll = r, l
		}
		if len(item) == 0 {
			return nil, nil
		}
		if len(item) > 1 {
			return nil, fmt.Errorf("%s with %d items on its single side", n.name, len(item))
		}
		for _, x := range coll {
			if eq, ok := equal(item[0], x); ok && eq {
				return boolVal(true), nil
			}
		}
		return boolVal(false), nil
	case "=", "!=":
		if len(l) == 0 || len(r) == 0 {
			return nil, nil
		}
		if len(l) != len(r) {
			return boolVal(n.name == "!="), nil
		}
		for i := range l {
			eq, ok := equal(l[i], r[i])
			if !ok {
				return nil, nil
			}
			if !eq {
				return boolVal(n.name == "!="), nil
			}
		}
		return boolVal(n.name == "="), nil
	case "~", "!~":
		if len(l) == 0 && len(r) == 0 {
			return boolVal(n.name == "~"), nil
		}
		eq := len(l) == len(r)
		for i := 0; eq && i < len(l); i++ {
			eq = equivalent(l[i], r[i])
		}
		return boolVal(eq == (n.name == "~")), nil
	case "&":
		str := func(c []fpValue) (string, error) {
			if len(c) == 0 {
				return "", nil
			}
			if len(c) > 1 {
				return "", fmt.Errorf("& on %d items", len(c))
			}
			p, _ := c[0].prim()
			return p.text(), nil
		}
		a, err := str(l)
		if err != nil {
			return nil, err
		}
		b, err := str(r)
		if err != nil {
			return nil, err
		}
		return []fpValue{{k: fpStr, s: a + b}}, nil
	}
	if len(l) == 0 || len(r) == 0 {
		return nil, nil
	}
	if len(l) != 1 || len(r) != 1 {
		return nil, fmt.Errorf("operator %s on collections of %d and %d items", n.name, len(l), len(r))
	}
	a, b := operand(l[0]), operand(r[0])
	switch n.name {
	case "<", ">", "<=", ">=":
		c, ok, err := compare(a, b)
		if err != nil {
			return nil, err
		}
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
	return arithmetic(n.name, a, b)
}

// operand is the System value of an operator's operand: primitives
// unwrapped, Quantity elements as quantities.
func operand(v fpValue) fpValue {
	if q, ok := quantityOf(v); ok {
		return q
	}
	p, _ := v.prim()
	return p
}

// quantityOf reads a Quantity element (value with code or unit) or a
// System Quantity.
func quantityOf(v fpValue) (fpValue, bool) {
	if v.k == fpQty {
		return v, true
	}
	if v.k != fpElem || v.e == nil || v.e.prim != nil {
		return v, false
	}
	switch v.e.typ {
	case "", "Quantity", "SimpleQuantity", "Age", "Duration", "Distance", "Count", "MoneyQuantity":
	default:
		return v, false
	}
	x := v.e.first("value")
	if x == nil || x.prim == nil || x.prim.kind != jNum {
		return v, false
	}
	unit := v.e.str("code")
	if unit == "" || (v.e.str("system") != "" && v.e.str("system") != "http://unitsofmeasure.org") {
		unit = v.e.str("unit")
	}
	if unit == "" && v.e.typ == "" && v.e.first("unit") == nil && v.e.first("code") == nil {
		return v, false // not recognisably a Quantity
	}
	if unit == "" {
		unit = "1"
	}
	f, _ := strconv.ParseFloat(x.prim.s, 64)
	return fpValue{k: fpQty, n: f, unit: unit}, true
}

// roundDec removes binary floating-point noise from a decimal result.
func roundDec(f float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 15, 64), 64)
	return r
}

func numVal(f float64, a, b fpKind) fpValue {
	if a == fpInt && b == fpInt {
		return fpValue{k: fpInt, n: f}
	}
	return fpValue{k: fpDec, n: roundDec(f)}
}

// arithmetic implements + - * / div mod (N1 §6.6) on numbers, strings (+),
// quantities and date/time ± quantity.
func arithmetic(op string, a, b fpValue) ([]fpValue, error) {
	// Strings that are dates take part in date arithmetic (birthDate + 18 years).
	if a.k == fpStr && b.k == fpQty {
		if t, ok := parseTemporal(a.s); ok {
			a = t.value()
		}
	}
	switch {
	case a.isNum() && b.isNum():
		switch op {
		case "+":
			return []fpValue{numVal(a.n+b.n, a.k, b.k)}, nil
		case "-":
			return []fpValue{numVal(a.n-b.n, a.k, b.k)}, nil
		case "*":
			return []fpValue{numVal(a.n*b.n, a.k, b.k)}, nil
		case "/":
			if b.n == 0 {
				return nil, nil
			}
			return []fpValue{{k: fpDec, n: roundDec(a.n / b.n)}}, nil
		case "div", "mod":
			if b.n == 0 {
				return nil, nil
			}
			// Scale decimals to integers so that 5.5 mod 0.7 is 0.6.
			p := math.Pow(10, float64(min(max(decimals(a), decimals(b)), 9)))
			x, y := math.Round(a.n*p), math.Round(b.n*p)
			if op == "div" {
				return []fpValue{{k: fpInt, n: math.Trunc(x / y)}}, nil
			}
			return []fpValue{numVal(math.Mod(x, y)/p, a.k, b.k)}, nil
		}
	case a.k == fpStr && b.k == fpStr && op == "+":
		return []fpValue{{k: fpStr, s: a.s + b.s}}, nil
	case a.isTemporal() && b.k == fpQty && (op == "+" || op == "-"):
		n := b.n
		if op == "-" {
			n = -n
		}
		t, _ := parseTemporal(a.s)
		r, err := t.add(n, b.unit)
		if err != nil {
			return nil, err
		}
		return []fpValue{r.value()}, nil
	case a.k == fpQty && b.k == fpQty && (op == "+" || op == "-"):
		f, ok := convertUnit(b.n, b.unit, a.unit)
		if !ok {
			return nil, nil
		}
		if op == "-" {
			f = -f
		}
		return []fpValue{{k: fpQty, n: roundDec(a.n + f), unit: a.unit}}, nil
	case a.k == fpQty && b.isNum() && (op == "*" || op == "/"):
		if op == "/" {
			if b.n == 0 {
				return nil, nil
			}
			return []fpValue{{k: fpQty, n: roundDec(a.n / b.n), unit: a.unit}}, nil
		}
		return []fpValue{{k: fpQty, n: roundDec(a.n * b.n), unit: a.unit}}, nil
	case a.isNum() && b.k == fpQty && op == "*":
		return []fpValue{{k: fpQty, n: roundDec(a.n * b.n), unit: b.unit}}, nil
	case a.k == fpQty && b.k == fpQty && op == "/":
		f, ok := convertUnit(b.n, b.unit, a.unit)
		if !ok || f == 0 {
			return nil, nil
		}
		return []fpValue{{k: fpQty, n: roundDec(a.n / f), unit: "1"}}, nil
	}
	return nil, fmt.Errorf("operator %s is not defined for %s and %s", op, a.typeName(), b.typeName())
}

// compare orders two System values (N1 §6.2); ok is false when the order
// is unknown (dates of different precision equal on their common part,
// quantities in units that do not convert).
func compare(a, b fpValue) (c int, ok bool, err error) {
	cmpF := func(x, y float64) int {
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	a, b = dateOperands(a, b)
	if a.k == fpStr && b.k == fpStr {
		// Two strings that both read as dates compare as dates.
		if looksTemporal(a.s) && looksTemporal(b.s) {
			ta, okA := parseTemporal(a.s)
			tb, okB := parseTemporal(b.s)
			if okA && okB {
				return compareTemporal(ta, tb)
			}
		}
		return strings.Compare(a.s, b.s), true, nil
	}
	switch {
	case a.isNum() && b.isNum():
		return cmpF(a.n, b.n), true, nil
	case a.k == fpQty && b.k == fpQty:
		f, ok := convertUnit(b.n, b.unit, a.unit)
		if !ok {
			return 0, false, nil
		}
		return cmpF(roundDec(a.n), roundDec(f)), true, nil
	case a.isTemporal() && b.isTemporal():
		ta, _ := parseTemporal(a.s)
		tb, _ := parseTemporal(b.s)
		return compareTemporal(ta, tb)
	}
	return 0, false, fmt.Errorf("cannot compare %s with %s", a.typeName(), b.typeName())
}

// dateOperands reads a String compared with a date as a date: a FHIR date
// element is a string in a tree no walker has typed (birthDate).
func dateOperands(a, b fpValue) (fpValue, fpValue) {
	if a.k == fpStr && b.isTemporal() {
		if t, ok := parseTemporal(a.s); ok {
			a = t.value()
		}
	}
	if b.k == fpStr && a.isTemporal() {
		if t, ok := parseTemporal(b.s); ok {
			b = t.value()
		}
	}
	return a, b
}

func compareTemporal(a, b fpTemporal) (int, bool, error) {
	if (a.k == fpTime) != (b.k == fpTime) {
		return 0, false, fmt.Errorf("cannot compare a Time with a Date or DateTime")
	}
	c, ok := a.cmp(b)
	return c, ok, nil
}

func looksTemporal(s string) bool {
	return len(s) >= 4 && s[0] >= '0' && s[0] <= '9' && (len(s) == 4 || s[4] == '-' || s[2] == ':')
}

// equal is = on two items (N1 §6.1.1); ok is false when the answer is
// unknown (dates of different precision, quantities whose units do not
// convert).
func equal(a, b fpValue) (eq, ok bool) {
	if qa, isQ := quantityOf(a); isQ {
		if qb, isQb := quantityOf(b); isQb {
			f, conv := convertUnit(qb.n, qb.unit, qa.unit)
			if !conv {
				return false, false
			}
			return roundDec(qa.n) == roundDec(f), true
		}
	}
	ap, aok := a.prim()
	bp, bok := b.prim()
	if aok && bok {
		if ap.isNum() && bp.isNum() {
			return roundDec(ap.n) == roundDec(bp.n), true
		}
		ap, bp = dateOperands(ap, bp)
		if ap.isTemporal() && bp.isTemporal() {
			ta, _ := parseTemporal(ap.s)
			tb, _ := parseTemporal(bp.s)
			if (ta.k == fpTime) != (tb.k == fpTime) {
				return false, true
			}
			c, known := ta.cmp(tb)
			return c == 0, known
		}
		if ap.k != bp.k {
			return false, true
		}
		switch ap.k {
		case fpStr:
			return ap.s == bp.s, true
		case fpBool:
			return ap.b == bp.b, true
		}
		return false, true
	}
	if a.k == fpElem && b.k == fpElem && !aok && !bok {
		return a.e == b.e || elemKey(a.e) == elemKey(b.e), true
	}
	return false, true
}

// equivalent is ~ (N1 §6.1.3): strings ignoring case and whitespace
// differences, decimals at the lesser precision, unknown equality false.
func equivalent(a, b fpValue) bool {
	ap, aok := a.prim()
	bp, bok := b.prim()
	if aok && bok && ap.k == fpStr && bp.k == fpStr {
		return strings.EqualFold(strings.Join(strings.Fields(ap.s), " "), strings.Join(strings.Fields(bp.s), " "))
	}
	if aok && bok && ap.isNum() && bp.isNum() {
		d := min(decimals(ap), decimals(bp))
		p := math.Pow(10, float64(d))
		return math.Round(ap.n*p) == math.Round(bp.n*p)
	}
	eq, ok := equal(a, b)
	return ok && eq
}

// decimals is the number of decimal places a number was written with.
func decimals(v fpValue) int {
	s := v.s
	if s == "" {
		s = strconv.FormatFloat(v.n, 'f', -1, 64)
	}
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return len(s) - i - 1
	}
	return 0
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

// union merges collections, removing duplicates (N1 §6.4.1).
func union(l, r []fpValue) []fpValue {
	var out []fpValue
	for _, x := range append(append([]fpValue{}, l...), r...) {
		if !has(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func has(c []fpValue, x fpValue) bool {
	for _, y := range c {
		if eq, ok := equal(x, y); ok && eq {
			return true
		}
	}
	return false
}
