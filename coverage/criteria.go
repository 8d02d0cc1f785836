package coverage

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/priora/priora/members"
	"github.com/priora/priora/profiles"
)

// Criterion is one named medical-necessity or administrative criterion of
// a rule, or a combination of criteria: exactly one of Expression,
// Frequency, All, Any or Not is set.
type Criterion struct {
	ID          string `yaml:"id"`
	Description string `yaml:"description"`
	// Expression is a FHIRPath boolean over the request (see Request for
	// the variables). It is met when true, not met when false and unknown
	// when empty: the data it reads is absent.
	Expression string `yaml:"expression"`
	// Data, when given, is the FHIRPath of the data the criterion reads:
	// when it is empty the criterion is unknown whatever Expression says
	// (for criteria such as "a document is attached", whose expression is
	// false, not empty, when the document is missing).
	Data string `yaml:"data"`
	// Frequency limits how often the rule's service is approved for the
	// member, counted over their stored prior authorizations.
	Frequency *Frequency `yaml:"frequency"`
	// RequestInfo lists the LOINC codes of the documentation to ask for
	// when the criterion is unknown.
	RequestInfo []string `yaml:"requestInfo"`
	// Administrative marks criteria that are not clinical judgement
	// (eligibility, frequency, benefit limits): only these may deny.
	Administrative bool `yaml:"administrative"`

	All []*Criterion `yaml:"all"`
	Any []*Criterion `yaml:"any"`
	Not *Criterion   `yaml:"not"`

	expr, data *profiles.FHIRPath
}

// Frequency is "at most Max approved services of the rule's codes per
// Days days".
type Frequency struct {
	Max  int `yaml:"max"`
	Days int `yaml:"days"`
}

// Finding is what a criterion came to.
type Finding string

const (
	Met     Finding = "met"
	NotMet  Finding = "not-met"
	Unknown Finding = "unknown"
)

// CriterionResult is one leaf criterion's outcome with its evidence: the
// FHIRPath locations of the data it read.
type CriterionResult struct {
	ID             string   `json:"id" bson:"id"`
	Description    string   `json:"description,omitempty" bson:"description,omitempty"`
	Finding        Finding  `json:"finding" bson:"finding"`
	Evidence       []string `json:"evidence,omitempty" bson:"evidence,omitempty"`
	RequestInfo    []string `json:"requestInfo,omitempty" bson:"requestInfo,omitempty"`
	Administrative bool     `json:"administrative,omitempty" bson:"administrative,omitempty"`
	// Detail says in words what was found (frequency counts, errors).
	Detail string `json:"detail,omitempty" bson:"detail,omitempty"`
}

// Request is the data criteria read, as parsed FHIR: the request Bundle
// and the resources in it the variables name. Any may be nil (CRD has no
// Claim): criteria reading them are then unknown.
type Request struct {
	// Bundle is the PAS request Bundle, or for CRD a Bundle of the hook's
	// resources; questionnaireResponse() searches its entries. It is the
	// focus of every criterion.
	Bundle []profiles.Value
	// Claim is %claim, Item %item (the Claim.item or order being decided),
	// Patient %patient, Coverage %coverage, Member %member (the roster
	// entry, when a roster is loaded). Empty when absent.
	Claim, Item, Patient, Coverage, Member []profiles.Value
	// Today is %today (YYYY-MM-DD).
	Today string
	// History returns the member's earlier services for frequency limits;
	// ok is false when they cannot be known (no member id).
	History func() (prior []Prior, ok bool, err error)
}

// Prior is one earlier service of the member: an item of a stored prior
// authorization.
type Prior struct {
	Codes    []Code
	Approved bool
	At       time.Time
	// Authorization is the chain it belongs to (the current chain's own
	// items are not counted).
	Authorization string
}

// criteriaVars are the variables a criterion expression may use.
var criteriaVars = []string{"claim", "item", "patient", "coverage", "member", "today", "bundle"}

// criteriaFuncs are the environment functions a criterion may call.
var criteriaFuncs = []string{"questionnaireResponse"}

// compile checks and compiles the criterion tree once per load; n is its
// YAML node, for line numbers.
func (c *Criterion) compile(at string, n *yaml.Node, seen map[string]bool) []Problem {
	line := 0
	if n != nil {
		line = n.Line
	}
	var probs []Problem
	add := func(format string, a ...any) {
		probs = append(probs, Problem{Line: line, Message: fmt.Sprintf(format, a...)})
	}
	kinds := 0
	for _, set := range []bool{c.Expression != "", c.Frequency != nil, len(c.All) > 0, len(c.Any) > 0, c.Not != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		add("%s: give exactly one of expression, frequency, all, any or not", at)
		return probs
	}
	if c.Expression != "" || c.Frequency != nil {
		if c.ID == "" {
			add("%s: a criterion needs an id", at)
		} else if seen[c.ID] {
			add("%s: criterion id %q is used twice in this rule", at, c.ID)
		}
		seen[c.ID] = true
		at = fmt.Sprintf("criterion %s", c.ID)
		if c.Description == "" {
			add("%s: a description is required (providers and reviewers read it)", at)
		}
		for _, code := range c.RequestInfo {
			if !looksLOINC(code) {
				add("%s: requestInfo %q is not a LOINC code (nnnnn-n with a valid check digit)", at, code)
			}
		}
	}
	if c.Expression != "" {
		x, err := compileCriterion(c.Expression)
		if err != nil {
			add("%s: expression does not compile: %v", at, err)
		}
		c.expr = x
	}
	if c.Data != "" {
		if c.Expression == "" {
			add("%s: data goes with an expression", at)
		}
		x, err := compileCriterion(c.Data)
		if err != nil {
			add("%s: data does not compile: %v", at, err)
		}
		c.data = x
	}
	if f := c.Frequency; f != nil && (f.Max < 1 || f.Days < 1) {
		add("%s: frequency needs max >= 1 and days >= 1", at)
	}
	kid := func(key string, i int) *yaml.Node {
		v := valueOf(n, key)
		if v == nil {
			return nil
		}
		if i < 0 {
			return v
		}
		if v.Kind == yaml.SequenceNode && i < len(v.Content) {
			return v.Content[i]
		}
		return nil
	}
	for i, k := range c.All {
		probs = append(probs, k.compile(fmt.Sprintf("%s.all[%d]", at, i), kid("all", i), seen)...)
	}
	for i, k := range c.Any {
		probs = append(probs, k.compile(fmt.Sprintf("%s.any[%d]", at, i), kid("any", i), seen)...)
	}
	if c.Not != nil {
		probs = append(probs, c.Not.compile(at+".not", kid("not", -1), seen)...)
	}
	return probs
}

// compileCriterion compiles a criterion's FHIRPath, refusing variables
// and functions criteria do not have.
func compileCriterion(src string) (*profiles.FHIRPath, error) {
	x, err := profiles.CompileFHIRPath(src, criteriaFuncs...)
	if err != nil {
		return nil, err
	}
	for _, v := range x.Variables() {
		if !slices.Contains(criteriaVars, v) && !slices.Contains([]string{"ucum", "sct", "loinc", "resource", "rootResource", "context"}, v) {
			return nil, fmt.Errorf("unknown variable %%%s (criteria have %%%s)", v, strings.Join(criteriaVars, ", %"))
		}
	}
	return x, nil
}

// hasAdministrative reports whether any leaf is administrative.
func (c *Criterion) hasAdministrative() bool {
	if c == nil {
		return false
	}
	if c.Administrative {
		return true
	}
	for _, k := range append(append(slices.Clone(c.All), c.Any...), c.Not) {
		if k.hasAdministrative() {
			return true
		}
	}
	return false
}

// looksLOINC checks a LOINC code's form and mod-10 check digit.
func looksLOINC(code string) bool {
	body, check, ok := strings.Cut(code, "-")
	if !ok || len(body) == 0 || len(body) > 7 || len(check) != 1 {
		return false
	}
	sum := 0
	// LOINC's check digit is the Luhn mod 10 over the body.
	for i := range len(body) {
		ch := body[len(body)-1-i]
		if ch < '0' || ch > '9' {
			return false
		}
		d := int(ch - '0')
		if i%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return check[0] >= '0' && check[0] <= '9' && int(check[0]-'0') == (10-sum%10)%10
}

// evaluate decides the criterion tree, appending leaf results to out.
func (c *Criterion) evaluate(r *Rule, req *Request, env *profiles.FHIRPathEnv, out *[]CriterionResult) Finding {
	switch {
	case len(c.All) > 0:
		f := Met
		for _, k := range c.All {
			switch k.evaluate(r, req, env, out) {
			case NotMet:
				f = NotMet
			case Unknown:
				if f == Met {
					f = Unknown
				}
			}
		}
		return f
	case len(c.Any) > 0:
		f := NotMet
		for _, k := range c.Any {
			switch k.evaluate(r, req, env, out) {
			case Met:
				f = Met
			case Unknown:
				if f == NotMet {
					f = Unknown
				}
			}
		}
		return f
	case c.Not != nil:
		switch c.Not.evaluate(r, req, env, out) {
		case Met:
			return NotMet
		case NotMet:
			return Met
		}
		return Unknown
	}
	res := CriterionResult{ID: c.ID, Description: c.Description, Administrative: c.Administrative, Finding: Unknown}
	switch {
	case c.Frequency != nil:
		res.Finding, res.Detail = c.Frequency.evaluate(r, req)
	case req == nil || len(req.Bundle) == 0:
		res.Detail = "no request data"
	default:
		res.Finding, res.Evidence, res.Detail = c.evalExpr(req, env)
	}
	if res.Finding == Unknown {
		res.RequestInfo = c.RequestInfo
	}
	*out = append(*out, res)
	return res.Finding
}

func (c *Criterion) evalExpr(req *Request, env *profiles.FHIRPathEnv) (Finding, []string, string) {
	var evidence []string
	if c.data != nil {
		d, err := c.data.Evaluate(req.Bundle, env)
		if err != nil {
			return Unknown, nil, "data: " + err.Error()
		}
		if len(d) == 0 {
			return Unknown, nil, ""
		}
		for _, v := range d {
			if p := v.Path(); p != "" && !slices.Contains(evidence, p) {
				evidence = append(evidence, p)
			}
		}
	}
	var seen []string
	e := *env
	e.Evidence = &seen
	b, ok, err := c.expr.EvaluateBool(req.Bundle, &e)
	for _, p := range seen {
		if !slices.Contains(evidence, p) {
			evidence = append(evidence, p)
		}
	}
	if err != nil {
		return Unknown, evidence, err.Error()
	}
	switch {
	case !ok:
		return Unknown, evidence, ""
	case b:
		return Met, evidence, ""
	}
	return NotMet, evidence, ""
}

func (f *Frequency) evaluate(r *Rule, req *Request) (Finding, string) {
	if req == nil || req.History == nil {
		return Unknown, "the member's earlier authorizations are not known"
	}
	prior, ok, err := req.History()
	if err != nil {
		return Unknown, "earlier authorizations could not be read"
	}
	if !ok {
		return Unknown, "no member id to look up earlier authorizations"
	}
	today, err := time.Parse("2006-01-02", req.Today)
	if err != nil {
		return Unknown, "no date of service"
	}
	since := today.AddDate(0, 0, -f.Days)
	n := 0
	for _, p := range prior {
		if !p.Approved || p.At.Before(since) {
			continue
		}
		if slices.ContainsFunc(p.Codes, func(c Code) bool { return r.codeMatches([]Code{{System: Canonical(c.System), Code: c.Code}}) }) {
			n++
		}
	}
	detail := fmt.Sprintf("%d approved in the last %d days (limit %d)", n, f.Days, f.Max)
	if n >= f.Max {
		return NotMet, detail
	}
	return Met, detail
}

// env builds the FHIRPath environment of a request.
func (req *Request) env() *profiles.FHIRPathEnv {
	vars := map[string][]profiles.Value{
		"claim": req.Claim, "item": req.Item, "patient": req.Patient, "coverage": req.Coverage,
		"member": req.Member, "bundle": req.Bundle, "today": nil,
	}
	env := &profiles.FHIRPathEnv{Vars: vars, Funcs: map[string]profiles.FHIRPathFunc{"questionnaireResponse": req.questionnaireResponse}}
	if t, err := time.Parse(time.DateOnly, req.Today); err == nil {
		vars["today"] = []profiles.Value{profiles.DateValue(t)}
		env.Now = t
	}
	return env
}

var qrByCanonical = mustFHIRPath("entry.resource.ofType(QuestionnaireResponse).where(questionnaire = %q or questionnaire.startsWith(%q & '|'))")

// questionnaireResponse(canonical) returns the QuestionnaireResponses in the
// request answering the questionnaire (any version unless one is given).
func (req *Request) questionnaireResponse(_ []profiles.Value, args [][]profiles.Value) ([]profiles.Value, error) {
	if len(args) != 1 || len(args[0]) != 1 {
		return nil, fmt.Errorf("questionnaireResponse takes one canonical")
	}
	return qrByCanonical.Evaluate(req.Bundle, &profiles.FHIRPathEnv{Vars: map[string][]profiles.Value{"q": args[0]}})
}

func mustFHIRPath(src string) *profiles.FHIRPath {
	x, err := profiles.CompileFHIRPath(src)
	if err != nil {
		panic(err)
	}
	return x
}

// Explain renders criteria results in plain words, one per line.
func Explain(results []CriterionResult) string {
	var b strings.Builder
	for _, c := range results {
		fmt.Fprintf(&b, "%s: %s (%s)", findingWords[c.Finding], c.Description, c.ID)
		if c.Detail != "" {
			fmt.Fprintf(&b, " — %s", c.Detail)
		}
		b.WriteString("\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

var findingWords = map[Finding]string{Met: "Met", NotMet: "Not met", Unknown: "Not documented"}

// Words is a finding in plain words.
func (f Finding) Words() string { return findingWords[f] }

// memberValue is the roster's view of the member as %member: an object
// with the View's JSON fields (memberId, birthDate, gender, plan,
// productLine, coverageStart, …).
func memberValue(v *members.View) []profiles.Value {
	// The engine navigates resources: the view travels as a Basic-typed
	// object whose other members are the View's JSON fields.
	b, err := json.Marshal(struct {
		ResourceType string `json:"resourceType"`
		*members.View
	}{"Basic", v})
	if err != nil {
		return nil
	}
	val, err := profiles.ParseResource(b)
	if err != nil {
		return nil
	}
	return []profiles.Value{val}
}
