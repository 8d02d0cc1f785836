package profiles

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// ---- functions ----

// fpFunc is one built-in function: its argument counts and its code. n is
// the call node (its arguments unevaluated), in the input collection.
type fpFunc struct {
	min, max int
	fn       func(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error)
}

// fpFuncTable is the list of functions the engine implements and their
// dispatch; section names are those of FHIRPath N1 §5 and of the FHIR R4
// FHIRPath page (§2.1.9.1 "Additional functions").
var fpFuncTable map[string]fpFunc

func init() {
	t := map[string]fpFunc{
		// §5.1 Existence
		"empty":      {0, 0, func(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) { return boolVal(len(in) == 0), nil }},
		"exists":     {0, 1, fnExists},
		"all":        {1, 1, fnAll},
		"allTrue":    {0, 0, fnBoolAgg},
		"anyTrue":    {0, 0, fnBoolAgg},
		"allFalse":   {0, 0, fnBoolAgg},
		"anyFalse":   {0, 0, fnBoolAgg},
		"subsetOf":   {1, 1, fnSetOp},
		"supersetOf": {1, 1, fnSetOp},
		"count":      {0, 0, func(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) { return intVal(len(in)), nil }},
		"distinct":   {0, 0, func(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) { return union(in, nil), nil }},
		"isDistinct": {0, 0, func(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
			return boolVal(len(union(in, nil)) == len(in)), nil
		}},
		// §5.2 Filtering and projection
		"where":  {1, 1, fnIterate},
		"select": {1, 1, fnIterate},
		"repeat": {1, 1, fnRepeat},
		"ofType": {1, 1, fnType},
		// §5.3 Subsetting
		"single":    {0, 0, fnSubset},
		"first":     {0, 0, fnSubset},
		"last":      {0, 0, fnSubset},
		"tail":      {0, 0, fnSubset},
		"skip":      {1, 1, fnSubset},
		"take":      {1, 1, fnSubset},
		"intersect": {1, 1, fnSetOp},
		"exclude":   {1, 1, fnSetOp},
		// §5.4 Combining
		"union":   {1, 1, fnSetOp},
		"combine": {1, 1, fnSetOp},
		// §5.5 Conversion
		"iif":                {2, 3, fnIif},
		"toBoolean":          {0, 0, fnConvert},
		"convertsToBoolean":  {0, 0, fnConvert},
		"toInteger":          {0, 0, fnConvert},
		"convertsToInteger":  {0, 0, fnConvert},
		"toDecimal":          {0, 0, fnConvert},
		"convertsToDecimal":  {0, 0, fnConvert},
		"toString":           {0, 0, fnConvert},
		"convertsToString":   {0, 0, fnConvert},
		"toDate":             {0, 0, fnConvert},
		"convertsToDate":     {0, 0, fnConvert},
		"toDateTime":         {0, 0, fnConvert},
		"convertsToDateTime": {0, 0, fnConvert},
		"toTime":             {0, 0, fnConvert},
		"convertsToTime":     {0, 0, fnConvert},
		"toQuantity":         {0, 1, fnConvert},
		"convertsToQuantity": {0, 1, fnConvert},
		// §5.6 String Manipulation (and the additional string functions)
		"indexOf":        {1, 1, fnString},
		"lastIndexOf":    {1, 1, fnString},
		"substring":      {1, 2, fnString},
		"startsWith":     {1, 1, fnString},
		"endsWith":       {1, 1, fnString},
		"contains":       {1, 1, fnString},
		"upper":          {0, 0, fnString},
		"lower":          {0, 0, fnString},
		"replace":        {2, 2, fnString},
		"matches":        {1, 1, fnString},
		"replaceMatches": {2, 2, fnString},
		"length":         {0, 0, fnString},
		"toChars":        {0, 0, fnString},
		"trim":           {0, 0, fnString},
		"split":          {1, 1, fnString},
		"encode":         {1, 1, fnString},
		"decode":         {1, 1, fnString},
		"escape":         {1, 1, fnString},
		"unescape":       {1, 1, fnString},
		"join":           {0, 1, fnJoin},
		// §5.7 Math
		"abs":      {0, 0, fnMath},
		"ceiling":  {0, 0, fnMath},
		"exp":      {0, 0, fnMath},
		"floor":    {0, 0, fnMath},
		"ln":       {0, 0, fnMath},
		"log":      {1, 1, fnMath},
		"power":    {1, 1, fnMath},
		"round":    {0, 1, fnMath},
		"sqrt":     {0, 0, fnMath},
		"truncate": {0, 0, fnMath},
		// §5.8 Tree navigation
		"children":    {0, 0, fnTree},
		"descendants": {0, 0, fnTree},
		// §5.9 Utility functions
		"trace":     {1, 2, func(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) { return in, nil }},
		"now":       {0, 0, fnClock},
		"timeOfDay": {0, 0, fnClock},
		"today":     {0, 0, fnClock},
		// §6.3 Types (function forms), §6.5.3 not()
		"is":  {1, 1, fnType},
		"as":  {1, 1, fnType},
		"not": {0, 0, fnNot},
		// §7 Aggregates
		"aggregate": {1, 2, fnAggregate},
		// FHIR R4 §2.1.9.1 additional functions
		"extension":  {1, 1, fnExtension},
		"hasValue":   {0, 0, fnHasValue},
		"getValue":   {0, 0, fnHasValue},
		"resolve":    {0, 0, fnResolve},
		"memberOf":   {1, 1, fnMemberOf},
		"comparable": {1, 1, fnComparable},
	}
	fpFuncTable = t
}

func intVal(i int) []fpValue    { return []fpValue{{k: fpInt, n: float64(i)}} }
func strVal(s string) []fpValue { return []fpValue{{k: fpStr, s: s}} }

func (env *fpEnv) withThis(v fpValue, i int, f func() ([]fpValue, error)) ([]fpValue, error) {
	saved, savedI := env.this, env.index
	env.this, env.index = []fpValue{v}, i
	out, err := f()
	env.this, env.index = saved, savedI
	return out, err
}

// each evaluates arg for every item of in with $this and $index set.
func (env *fpEnv) each(arg *fpNode, in []fpValue, f func(v fpValue, r []fpValue) (stop bool)) error {
	for i, v := range in {
		r, err := env.withThis(v, i, func() ([]fpValue, error) { return env.eval(arg, []fpValue{v}) })
		if err != nil {
			return err
		}
		if f(v, r) {
			return nil
		}
	}
	return nil
}

// arg evaluates argument i once against the focus.
func (env *fpEnv) arg(n *fpNode, i int) ([]fpValue, error) {
	if i >= len(n.args) {
		return nil, nil
	}
	return env.eval(n.args[i], env.this)
}

// argSingle evaluates argument i to at most one System value.
func (env *fpEnv) argSingle(n *fpNode, i int) (fpValue, bool, error) {
	v, err := env.arg(n, i)
	if err != nil || len(v) == 0 {
		return fpValue{}, false, err
	}
	if len(v) > 1 {
		return fpValue{}, false, fmt.Errorf("argument %d of %s() has %d items", i+1, n.name, len(v))
	}
	p, ok := v[0].prim()
	if !ok {
		return fpValue{}, false, fmt.Errorf("argument %d of %s() is not a primitive value", i+1, n.name)
	}
	return p, true, nil
}

func (env *fpEnv) argString(n *fpNode, i int) (string, bool, error) {
	p, ok, err := env.argSingle(n, i)
	if err != nil || !ok {
		return "", ok, err
	}
	if p.k != fpStr {
		return "", false, fmt.Errorf("argument %d of %s() is a %s, not a String", i+1, n.name, p.typeName())
	}
	return p.s, true, nil
}

func (env *fpEnv) argInt(n *fpNode, i int) (int, bool, error) {
	p, ok, err := env.argSingle(n, i)
	if err != nil || !ok {
		return 0, ok, err
	}
	if p.k != fpInt {
		return 0, false, fmt.Errorf("argument %d of %s() is a %s, not an Integer", i+1, n.name, p.typeName())
	}
	return int(p.n), true, nil
}

// single returns the one System value of a singleton input; ok is false
// for an empty input, an error for more than one item.
func single(n *fpNode, in []fpValue) (fpValue, bool, error) {
	if len(in) == 0 {
		return fpValue{}, false, nil
	}
	if len(in) > 1 {
		return fpValue{}, false, fmt.Errorf("%s() on %d items", n.name, len(in))
	}
	if q, ok := quantityOf(in[0]); ok {
		return q, true, nil
	}
	p, ok := in[0].prim()
	if !ok {
		return fpValue{}, false, fmt.Errorf("%s() on an element without a value", n.name)
	}
	return p, true, nil
}

func fnExists(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	if len(n.args) == 0 {
		return boolVal(len(in) > 0), nil
	}
	found := false
	err := env.each(n.args[0], in, func(_ fpValue, r []fpValue) bool {
		b, ok := toBool(r)
		found = ok && b
		return found
	})
	return boolVal(found), err
}

func fnAll(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	all := true
	err := env.each(n.args[0], in, func(_ fpValue, r []fpValue) bool {
		b, ok := toBool(r)
		all = ok && b
		return !all
	})
	return boolVal(all), err
}

func fnBoolAgg(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	want := n.name == "allTrue" || n.name == "anyTrue"
	anyOf := strings.HasPrefix(n.name, "any")
	for _, v := range in {
		p, _ := v.prim()
		if p.k != fpBool {
			return nil, fmt.Errorf("%s() on a %s", n.name, p.typeName())
		}
		if anyOf && p.b == want {
			return boolVal(true), nil
		}
		if !anyOf && p.b != want {
			return boolVal(false), nil
		}
	}
	return boolVal(!anyOf), nil
}

func fnIterate(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	var out []fpValue
	err := env.each(n.args[0], in, func(v fpValue, r []fpValue) bool {
		if n.name == "where" {
			if b, ok := toBool(r); ok && b {
				out = append(out, v)
			}
		} else {
			out = append(out, r...)
		}
		return false
	})
	return out, err
}

// fnRepeat applies the projection to the input, then to its results, and
// so on, adding only items not already in the output (N1 §5.2.4), so it
// ends on cycles.
func fnRepeat(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	var out []fpValue
	seen := map[*elem]bool{}
	work := in
	for len(work) > 0 {
		var next []fpValue
		err := env.each(n.args[0], work, func(_ fpValue, r []fpValue) bool {
			for _, x := range r {
				if x.k == fpElem {
					if seen[x.e] {
						continue
					}
					seen[x.e] = true
				} else if has(out, x) {
					continue
				}
				out = append(out, x)
				next = append(next, x)
			}
			return false
		})
		if err != nil {
			return nil, err
		}
		if len(out) > maxFHIRPathSteps/4 {
			return nil, fmt.Errorf("repeat() produced more than %d items", maxFHIRPathSteps/4)
		}
		work = next
	}
	return out, nil
}

func fnSubset(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	switch n.name {
	case "single":
		if len(in) > 1 {
			return nil, fmt.Errorf("single() on %d items", len(in))
		}
		return in, nil
	case "first":
		return in[:min(1, len(in))], nil
	case "last":
		return in[max(0, len(in)-1):], nil
	case "tail":
		return in[min(1, len(in)):], nil
	}
	k, ok, err := env.argInt(n, 0)
	if err != nil || !ok {
		return nil, err
	}
	k = max(0, min(k, len(in)))
	if n.name == "skip" {
		return in[k:], nil
	}
	return in[:k], nil
}

func fnSetOp(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	other, err := env.arg(n, 0)
	if err != nil {
		return nil, err
	}
	switch n.name {
	case "combine":
		return append(append([]fpValue{}, in...), other...), nil
	case "union":
		return union(in, other), nil
	case "subsetOf", "supersetOf":
		a, b := in, other
		if n.name == "supersetOf" {
			a, b = other, in
		}
		for _, x := range a {
			if !has(b, x) {
				return boolVal(false), nil
			}
		}
		return boolVal(true), nil
	}
	var out []fpValue
	for _, x := range in {
		if has(other, x) == (n.name == "intersect") {
			out = append(out, x)
		}
	}
	if n.name == "intersect" {
		out = union(out, nil)
	}
	return out, nil
}

func fnIif(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	c, err := env.eval(n.args[0], env.this)
	if err != nil {
		return nil, err
	}
	if len(c) > 1 {
		return nil, fmt.Errorf("iif() criterion has %d items", len(c))
	}
	if b, ok := toBool(c); ok && b {
		return env.eval(n.args[1], env.this)
	}
	if len(n.args) > 2 {
		return env.eval(n.args[2], env.this)
	}
	return nil, nil
}

func fnNot(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	if len(in) > 1 {
		return nil, fmt.Errorf("not() on %d items", len(in))
	}
	b, ok := toBool(in)
	if !ok {
		return nil, nil
	}
	return boolVal(!b), nil
}

func typeMatches(v fpValue, t string) bool {
	t = strings.TrimPrefix(strings.TrimPrefix(t, "FHIR."), "System.")
	tn := v.typeName()
	if strings.EqualFold(tn, t) && tn != "" {
		return true
	}
	if v.k == fpElem && v.e.typ == "" && v.e.choice == "" && fhirTypeSuffix[t] &&
		len(v.e.name) > len(t) && strings.HasSuffix(v.e.name, t) {
		return true // valueQuantity in a tree no walker has annotated
	}
	if tn == "" {
		return false
	}
	if v.k == fpElem && v.e.resType != "" && (t == "Resource" || t == "DomainResource") {
		return true
	}
	return false
}

func fnType(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	t := n.args[0].name
	if n.args[0].op != "type" && n.args[0].op != "id" {
		return nil, fmt.Errorf("%s() takes a type name", n.name)
	}
	switch n.name {
	case "is":
		if len(in) == 0 {
			return nil, nil
		}
		if len(in) > 1 {
			return nil, fmt.Errorf("is on %d items", len(in))
		}
		return boolVal(typeMatches(in[0], t)), nil
	}
	// as on more than one item is an error in N1 §6.3.2, but R4's own
	// invariants (dom-3: descendants().as(canonical)) use it as ofType(), as
	// the FHIR validators allow.
	var out []fpValue
	for _, v := range in {
		if typeMatches(v, t) {
			out = append(out, v)
		}
	}
	return out, nil
}

var reQuantity = regexp.MustCompile(`^([+-]?\d+(?:\.\d+)?)\s*(?:'([^']+)'|([a-z]+))?$`)

func fnConvert(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	v, ok, err := single(n, in)
	if err != nil || !ok {
		return nil, err
	}
	test := strings.HasPrefix(n.name, "convertsTo")
	target := strings.TrimPrefix(strings.TrimPrefix(n.name, "convertsTo"), "to")
	var out fpValue
	conv := false
	switch target {
	case "Boolean":
		switch {
		case v.k == fpBool:
			out, conv = v, true
		case v.k == fpStr:
			switch strings.ToLower(v.s) {
			case "true", "t", "yes", "y", "1", "1.0":
				out, conv = fpValue{k: fpBool, b: true}, true
			case "false", "f", "no", "n", "0", "0.0":
				out, conv = fpValue{k: fpBool, b: false}, true
			}
		case v.isNum() && (v.n == 0 || v.n == 1):
			out, conv = fpValue{k: fpBool, b: v.n == 1}, true
		}
	case "Integer":
		switch v.k {
		case fpInt:
			out, conv = v, true
		case fpBool:
			out, conv = fpValue{k: fpInt}, true
			if v.b {
				out.n = 1
			}
		case fpStr:
			if i, err := strconv.ParseInt(v.s, 10, 32); err == nil {
				out, conv = fpValue{k: fpInt, n: float64(i)}, true
			}
		}
	case "Decimal":
		switch v.k {
		case fpInt, fpDec:
			out, conv = fpValue{k: fpDec, n: v.n, s: v.s}, true
		case fpBool:
			out, conv = fpValue{k: fpDec}, true
			if v.b {
				out.n = 1
			}
		case fpStr:
			if regexp.MustCompile(`^[+-]?\d+(\.\d+)?$`).MatchString(v.s) {
				f, _ := strconv.ParseFloat(v.s, 64)
				out, conv = fpValue{k: fpDec, n: f, s: strings.TrimPrefix(v.s, "+")}, true
			}
		}
	case "String":
		out, conv = fpValue{k: fpStr, s: v.text()}, true
	case "Date", "DateTime", "Time":
		if v.k == fpStr || v.isTemporal() {
			if t, ok := parseTemporal(v.s); ok {
				switch {
				case target == "Time" && t.k == fpTime:
					out, conv = t.value(), true
				case target == "Date" && t.k != fpTime:
					t.k, t.tz = fpDate, false
					t.prec = min(t.prec, 3)
					out, conv = t.value(), true
				case target == "DateTime" && t.k != fpTime:
					t.k = fpDateTime
					out, conv = t.value(), true
				}
			}
		}
	case "Quantity":
		switch {
		case v.k == fpQty:
			out, conv = v, true
		case v.isNum():
			out, conv = fpValue{k: fpQty, n: v.n, unit: "1"}, true
		case v.k == fpBool:
			out, conv = fpValue{k: fpQty, unit: "1"}, true
			if v.b {
				out.n = 1
			}
		case v.k == fpStr:
			if m := reQuantity.FindStringSubmatch(strings.TrimSpace(v.s)); m != nil {
				f, _ := strconv.ParseFloat(m[1], 64)
				u := m[2] + m[3]
				if m[3] != "" && calendarUnits[m[3]] == "" {
					break
				}
				if u == "" {
					u = "1"
				}
				out, conv = fpValue{k: fpQty, n: f, unit: u}, true
			}
		}
		if conv && len(n.args) == 1 {
			u, ok, err := env.argString(n, 0)
			if err != nil {
				return nil, err
			}
			if ok {
				f, can := convertUnit(out.n, out.unit, u)
				out, conv = fpValue{k: fpQty, n: roundDec(f), unit: u}, can
			}
		}
	}
	if test {
		return boolVal(conv), nil
	}
	if !conv {
		return nil, nil
	}
	return []fpValue{out}, nil
}

var reCache sync.Map

func compileRe(s string) (*regexp.Regexp, error) {
	if r, ok := reCache.Load(s); ok {
		return r.(*regexp.Regexp), nil
	}
	if len(s) > 4096 {
		return nil, fmt.Errorf("regular expression longer than 4096 bytes")
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, err
	}
	reCache.Store(s, re)
	return re, nil
}

func fnString(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	v, ok, err := single(n, in)
	if err != nil || !ok {
		return nil, err
	}
	s := v.s
	switch {
	case v.k == fpStr:
	case in[0].k == fpElem && in[0].e.prim != nil && in[0].e.prim.kind == jStr:
		s = in[0].e.prim.s // a FHIR date or time is a string in JSON
	default:
		return nil, fmt.Errorf("%s() on a %s, not a String", n.name, v.typeName())
	}
	rs := []rune(s)
	arg := func(i int) (string, bool, error) { return env.argString(n, i) }
	switch n.name {
	case "upper":
		return strVal(strings.ToUpper(s)), nil
	case "lower":
		return strVal(strings.ToLower(s)), nil
	case "trim":
		return strVal(strings.TrimSpace(s)), nil
	case "length":
		return intVal(len(rs)), nil
	case "toChars":
		var out []fpValue
		for _, c := range rs {
			out = append(out, fpValue{k: fpStr, s: string(c)})
		}
		return out, nil
	case "substring":
		st, ok, err := env.argInt(n, 0)
		if err != nil || !ok || st < 0 || st >= len(rs) {
			return nil, err
		}
		end := len(rs)
		l, ok, err := env.argInt(n, 1)
		if err != nil {
			return nil, err
		}
		if ok {
			end = min(len(rs), st+max(0, l))
		}
		return strVal(string(rs[st:end])), nil
	}
	a, ok, err := arg(0)
	if err != nil || !ok {
		return nil, err
	}
	switch n.name {
	case "startsWith":
		return boolVal(strings.HasPrefix(s, a)), nil
	case "endsWith":
		return boolVal(strings.HasSuffix(s, a)), nil
	case "contains":
		return boolVal(strings.Contains(s, a)), nil
	case "indexOf", "lastIndexOf":
		i := strings.Index(s, a)
		if n.name == "lastIndexOf" {
			i = strings.LastIndex(s, a)
		}
		if i > 0 {
			i = utf8.RuneCountInString(s[:i])
		}
		return intVal(i), nil
	case "matches":
		re, err := compileRe("^(?s:" + a + ")$")
		if err != nil {
			return nil, err
		}
		return boolVal(re.MatchString(s)), nil
	case "split":
		var out []fpValue
		for _, p := range strings.Split(s, a) {
			out = append(out, fpValue{k: fpStr, s: p})
		}
		return out, nil
	case "replace", "replaceMatches":
		b, ok, err := arg(1)
		if err != nil || !ok {
			return nil, err
		}
		if n.name == "replace" {
			return strVal(strings.ReplaceAll(s, a, b)), nil
		}
		re, err := compileRe(a)
		if err != nil {
			return nil, err
		}
		return strVal(re.ReplaceAllString(s, b)), nil
	case "encode", "decode":
		return codec(n.name == "encode", a, s)
	case "escape", "unescape":
		return escape(n.name == "escape", a, s)
	}
	return nil, fmt.Errorf("unsupported function %s()", n.name)
}

// codec implements encode() and decode() for base64, urlbase64 and hex.
func codec(enc bool, format, s string) ([]fpValue, error) {
	var e interface {
		EncodeToString([]byte) string
		DecodeString(string) ([]byte, error)
	}
	switch format {
	case "base64":
		e = base64.StdEncoding
	case "urlbase64":
		e = base64.URLEncoding
	case "hex":
		e = hexCodec{}
	default:
		return nil, fmt.Errorf("unsupported encoding %q", format)
	}
	if enc {
		return strVal(e.EncodeToString([]byte(s))), nil
	}
	b, err := e.DecodeString(s)
	if err != nil {
		return nil, nil
	}
	return strVal(string(b)), nil
}

var htmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;")

type hexCodec struct{}

func (hexCodec) EncodeToString(b []byte) string        { return hex.EncodeToString(b) }
func (hexCodec) DecodeString(s string) ([]byte, error) { return hex.DecodeString(s) }

// escape implements escape() and unescape() for html and json.
func escape(esc bool, target, s string) ([]fpValue, error) {
	switch target {
	case "html":
		if esc {
			return strVal(htmlEscaper.Replace(s)), nil
		}
		return strVal(html.UnescapeString(s)), nil
	case "json":
		if esc {
			q := strconv.Quote(s)
			return strVal(q[1 : len(q)-1]), nil
		}
		u, err := strconv.Unquote(`"` + s + `"`)
		if err != nil {
			return nil, nil
		}
		return strVal(u), nil
	}
	return nil, fmt.Errorf("unsupported escape target %q", target)
}

// fnJoin concatenates a collection of strings with an optional separator.
func fnJoin(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	sep, _, err := env.argString(n, 0)
	if err != nil {
		return nil, err
	}
	parts := make([]string, 0, len(in))
	for _, v := range in {
		p, ok := v.prim()
		if !ok || p.k != fpStr {
			return nil, fmt.Errorf("join() on a %s, not a String", p.typeName())
		}
		parts = append(parts, p.s)
	}
	if len(in) == 0 {
		return nil, nil
	}
	return strVal(strings.Join(parts, sep)), nil
}

func fnMath(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	v, ok, err := single(n, in)
	if err != nil || !ok {
		return nil, err
	}
	if !v.isNum() && !(v.k == fpQty && (n.name == "abs" || n.name == "ceiling" || n.name == "floor" || n.name == "round" || n.name == "truncate")) {
		return nil, fmt.Errorf("%s() on a %s", n.name, v.typeName())
	}
	res := func(f float64, k fpKind) ([]fpValue, error) {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, nil
		}
		if v.k == fpQty {
			return []fpValue{{k: fpQty, n: f, unit: v.unit}}, nil
		}
		if k == fpDec {
			f = roundDec(f)
		}
		return []fpValue{{k: k, n: f}}, nil
	}
	switch n.name {
	case "abs":
		return res(math.Abs(v.n), v.k)
	case "ceiling":
		return res(math.Ceil(v.n), fpInt)
	case "floor":
		return res(math.Floor(v.n), fpInt)
	case "truncate":
		return res(math.Trunc(v.n), fpInt)
	case "exp":
		return res(math.Exp(v.n), fpDec)
	case "ln":
		return res(math.Log(v.n), fpDec)
	case "sqrt":
		return res(math.Sqrt(v.n), fpDec)
	case "round":
		d := 0
		if len(n.args) == 1 {
			var ok bool
			if d, ok, err = env.argInt(n, 0); err != nil || !ok {
				return nil, err
			}
			if d < 0 {
				return nil, fmt.Errorf("round() precision must be >= 0")
			}
		}
		p := math.Pow(10, float64(d))
		return res(math.Round(v.n*p)/p, fpDec)
	}
	a, ok, err := env.argSingle(n, 0)
	if err != nil || !ok {
		return nil, err
	}
	if !a.isNum() {
		return nil, fmt.Errorf("%s() argument is a %s", n.name, a.typeName())
	}
	if n.name == "log" {
		return res(math.Log(v.n)/math.Log(a.n), fpDec)
	}
	k := fpDec
	if v.k == fpInt && a.k == fpInt {
		k = fpInt
	}
	return res(math.Pow(v.n, a.n), k)
}

func fnTree(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
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
}

func fnClock(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	t := env.clock()
	switch n.name {
	case "today":
		return []fpValue{{k: fpDate, s: t.Format("2006-01-02")}}, nil
	case "timeOfDay":
		return []fpValue{{k: fpTime, s: t.Format("T15:04:05.000")}}, nil
	}
	return []fpValue{{k: fpDateTime, s: t.Format("2006-01-02T15:04:05.000Z07:00")}}, nil
}

func fnAggregate(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	total, err := env.arg(n, 1)
	if err != nil {
		return nil, err
	}
	saved := env.total
	defer func() { env.total = saved }()
	for i, v := range in {
		env.total = total
		r, err := env.withThis(v, i, func() ([]fpValue, error) { return env.eval(n.args[0], []fpValue{v}) })
		if err != nil {
			return nil, err
		}
		total = r
	}
	return total, nil
}

func fnExtension(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	url, ok, err := env.argString(n, 0)
	if err != nil || !ok {
		return nil, err
	}
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
}

func fnHasValue(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	ok := len(in) == 1 && in[0].k == fpElem && in[0].e.prim != nil
	if n.name == "hasValue" {
		return boolVal(ok), nil
	}
	if !ok {
		return nil, nil
	}
	p, _ := in[0].prim()
	return []fpValue{p}, nil
}

func fnResolve(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	var out []fpValue
	for _, v := range in {
		ref := ""
		if v.k == fpElem && v.e.prim == nil {
			ref = v.e.str("reference")
		} else if p, ok := v.prim(); ok {
			ref = p.s
		}
		if ref == "" || env.resolve == nil || v.k != fpElem {
			continue
		}
		if t := env.resolve(ref, v.e); t != nil {
			out = append(out, fpValue{e: t})
		}
	}
	return out, nil
}

func fnMemberOf(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	if env.r == nil {
		return nil, fmt.Errorf("memberOf() needs the validator's terminology")
	}
	url, ok, err := env.argString(n, 0)
	if err != nil || !ok || len(in) != 1 {
		return nil, err
	}
	vs := env.r.valueSet(url, env.pkg)
	if !vs.found {
		return nil, nil
	}
	v := in[0]
	if v.k == fpElem && v.e.prim == nil {
		codings := []*elem{v.e}
		if v.e.first("coding") != nil {
			codings = v.e.child("coding")
		}
		for _, c := range codings {
			if vs.contains(c.str("system"), c.str("code")) != memberNo {
				return boolVal(true), nil
			}
		}
		return boolVal(false), nil
	}
	p, _ := v.prim()
	return boolVal(vs.contains("", p.s) != memberNo), nil
}

// fnComparable reports whether two quantities' units convert.
func fnComparable(env *fpEnv, n *fpNode, in []fpValue) ([]fpValue, error) {
	a, ok, err := single(n, in)
	if err != nil || !ok {
		return nil, err
	}
	other, err := env.arg(n, 0)
	if err != nil || len(other) == 0 {
		return nil, err
	}
	b, isQ := quantityOf(other[0])
	if a.k != fpQty || !isQ {
		return nil, fmt.Errorf("comparable() takes two Quantities")
	}
	_, conv := convertUnit(1, b.unit, a.unit)
	return boolVal(conv), nil
}
