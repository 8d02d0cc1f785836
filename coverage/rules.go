// Package coverage holds a payer's coverage rules and answers, for one
// requested service, what the payer requires and decides. The same rules
// drive CRD (does this order need prior authorization?) and PAS (approve,
// deny, pend or modify this item). The package knows nothing of FHIR wire
// formats or HTTP: callers hand it plain codes and quantities.
package coverage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/priora/priora/members"
)

// Action is what the payer does with a requested item.
type Action string

const (
	Approve Action = "approve"
	Deny    Action = "deny"
	Pend    Action = "pend"
	Modify  Action = "modify"
)

// ReviewAction maps an action to its X12 306 code (HCR01).
func (a Action) ReviewAction() string {
	switch a {
	case Approve:
		return "A1"
	case Deny:
		return "A3"
	case Pend:
		return "A4"
	case Modify:
		return "A6"
	}
	return ""
}

func (a Action) valid() bool {
	switch a {
	case Approve, Deny, Pend, Modify:
		return true
	}
	return false
}

// Rules is a validated, compiled rule set. It is immutable and safe for
// concurrent use; reloading makes a new one.
type Rules struct {
	Payers   []PayerID
	Defaults Defaults
	// Version identifies the rule set on every decision and coverage
	// assertion: the file's own label, "@", and the start of the SHA-256
	// of its bytes ("2026.12@3f2a9c1b0d4e"); the hash alone without label.
	Version string
	rules   []*Rule
	// byCode indexes rules by "system|code" for the common exact-code case;
	// wildcard rules (code prefixes or no code) are in scan.
	byCode map[string][]*Rule
	scan   []*Rule
	// vars are the variables the rules' criteria read (UsesVariable),
	// found on first use.
	varsOnce sync.Once
	vars     map[string]bool
}

// PayerID identifies a payer this instance serves, as found in
// Coverage.payor identifiers. An empty System matches any system.
type PayerID struct {
	System string `yaml:"system"`
	Value  string `yaml:"value"`
}

// Defaults apply where no rule speaks.
type Defaults struct {
	// UnknownCode is the action for a code no rule names (pend unless set).
	UnknownCode Action `yaml:"unknownCode"`
	// AuthorizationDays is how long an approval is valid from its issue date.
	AuthorizationDays int `yaml:"authorizationDays"`
	// PolicyURL is a general coverage-policy page for cards.
	PolicyURL string `yaml:"policyUrl"`
	// PayerName labels CRD cards (Card.source.label) when the member's
	// Coverage names no payer display.
	PayerName string `yaml:"payerName"`
	// DTRLaunchURL is the SMART launch URL of the payer's DTR app. When set,
	// CRD answers an order that needs a questionnaire with a SMART app
	// launch card; when empty, with a request form completion card.
	DTRLaunchURL string `yaml:"dtrLaunchUrl"`
}

// Rule is one coverage rule. A rule matches a service when its code matches
// and every other condition given holds; the first matching rule in file
// order wins.
type Rule struct {
	ID          string `yaml:"id"`
	Description string `yaml:"description"`
	Category    string `yaml:"category"`
	// Source cites the public coverage policy the rule is modeled on.
	Source string `yaml:"source"`
	// ValidFrom and ValidTo (YYYY-MM-DD, inclusive, either optional)
	// bound the dates on which the rule applies.
	ValidFrom string `yaml:"validFrom"`
	ValidTo   string `yaml:"validTo"`
	Match     Match  `yaml:"match"`
	// Criteria, when given, decide the matched service: all met gives
	// Decision; any unknown pends and asks for the documentation; not met
	// gives OnNotMet.
	Criteria *Criterion `yaml:"criteria"`
	// OnNotMet is pend (default: clinical review) or deny. A denial
	// happens only when every criterion not met is administrative.
	OnNotMet Action `yaml:"onNotMet"`
	// DenyReasonCode and DenyNote go with a denial for criteria not met.
	DenyReasonCode string   `yaml:"denyReasonCode"`
	DenyNote       string   `yaml:"denyNote"`
	Decision       Decision `yaml:"decision"`
	CRD            CRD      `yaml:"crd"`
	order          int
	line           int
}

// Match is the condition part of a rule.
type Match struct {
	// Codes the rule applies to: a system with exact codes and/or prefixes.
	Codes []CodeSet `yaml:"codes"`
	// Diagnoses, when given, require at least one matching diagnosis.
	Diagnoses []CodeSet `yaml:"diagnoses"`
	// PlaceOfService, when given, requires one of these CMS POS codes.
	PlaceOfService []string `yaml:"placeOfService"`
	// Quantity bounds, when given, on the requested units.
	Quantity *Range `yaml:"quantity"`
	// Payers, when given, limit the rule to coverage from these payers.
	Payers []PayerID `yaml:"payers"`
	// Plans, when given, limit the rule to these plan identifiers: the
	// member's plan on the roster (members), else Coverage.class plan value.
	Plans []string `yaml:"plans"`
}

// CodeSet is a set of codes from one code system.
type CodeSet struct {
	System   string   `yaml:"system"`
	Codes    []string `yaml:"codes"`
	Prefixes []string `yaml:"prefixes"`
}

// Range bounds a number; a nil bound is open.
type Range struct {
	Min *float64 `yaml:"min"`
	Max *float64 `yaml:"max"`
}

// Decision is what PAS answers for an item the rule matches.
type Decision struct {
	Action Action `yaml:"action"`
	// Reason is the human-readable why, kept with the decision for reviewers.
	Reason string `yaml:"reason"`
	// ReasonCode is the X12 HCR03 review decision reason code for denials
	// and modifications.
	ReasonCode string `yaml:"reasonCode"`
	// Note is sent to the provider as a ClaimResponse.processNote.
	Note string `yaml:"note"`
	// AuthorizeQuantity is the number of units a modify authorizes.
	AuthorizeQuantity float64 `yaml:"authorizeQuantity"`
	// AuthorizationDays overrides the default validity of an approval.
	AuthorizationDays int `yaml:"authorizationDays"`
	// After and Then finish a pend automatically: after this delay the item
	// gets the Then action (for demos and conformance kits).
	After Duration `yaml:"after"`
	Then  Action   `yaml:"then"`
	// RequestInfo asks the provider for more documentation while pended:
	// LOINC attachment codes (PAS "additional information").
	RequestInfo []string `yaml:"requestInfo"`
}

// CRD is what Coverage Requirements Discovery says about a matching order.
type CRD struct {
	// Covered is covered, not-covered or conditional.
	Covered string `yaml:"covered"`
	// PANeeded is auth-needed, no-auth, satisfied, performpa or conditional.
	// "satisfied" waives prior authorization for everyone (PAS approves an
	// item citing the assertion without review).
	PANeeded string `yaml:"paNeeded"`
	// GoldCard lists ordering providers (NPIs) for whom prior authorization
	// is satisfied although PANeeded says otherwise (gold carding).
	GoldCard []string `yaml:"goldCard"`
	// DocNeeded is clinical, admin, patient, conditional or no-doc.
	DocNeeded  string   `yaml:"docNeeded"`
	DocPurpose []string `yaml:"docPurpose"`
	InfoNeeded []string `yaml:"infoNeeded"`
	// Questionnaire is a DTR questionnaire canonical.
	Questionnaire []string `yaml:"questionnaire"`
	PolicyURL     string   `yaml:"policyUrl"`
	PolicyTitle   string   `yaml:"policyTitle"`
	// Alternative is a cheaper or covered alternative to propose.
	Alternative *Code `yaml:"alternative"`
	// Companions are additional orders that usually go with this one.
	Companions []Code `yaml:"companions"`
	// Instructions for the clinician, shown as an information card.
	Instructions string `yaml:"instructions"`
	Contact      string `yaml:"contact"`
}

// Code is a coded concept.
type Code struct {
	System  string `yaml:"system"`
	Code    string `yaml:"code"`
	Display string `yaml:"display"`
}

// Duration is a time.Duration written like "30s" in YAML.
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration such as 30s or 2h", n.Line, s)
	}
	d.Duration = v
	return nil
}

type file struct {
	Version int `yaml:"version"`
	// Label is the file's own version label (e.g. 2026.12), recorded with
	// the content hash on every decision.
	Label    string    `yaml:"label"`
	Payers   []PayerID `yaml:"payers"`
	Defaults Defaults  `yaml:"defaults"`
	Rules    []*Rule   `yaml:"rules"`
}

// Load reads and validates a rules file.
func Load(path string) (*Rules, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("coverage: %w", err)
	}
	r, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("coverage: %s: %w", path, err)
	}
	return r, nil
}

// Problem is one finding of a rules file check, at a line of the file (0
// when it has no single place).
type Problem struct {
	Line    int
	Message string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s", p.Line, p.Message)
	}
	return p.Message
}

// ProblemsError is the error of a rules file that does not load: every
// problem found, in file order.
type ProblemsError []Problem

func (e ProblemsError) Error() string {
	s := make([]string, len(e))
	for i, p := range e {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

// Parse validates and compiles rules from YAML. Unknown keys are errors, so
// that a typo never silently disables a rule. The error is a ProblemsError
// listing every problem with its line.
func Parse(b []byte) (*Rules, error) {
	r, probs := parse(b)
	if len(probs) > 0 {
		return nil, ProblemsError(probs)
	}
	return r, nil
}

// Check validates a rules file without keeping it: every problem with its
// line (what `priora rules check` prints).
func Check(b []byte) []Problem {
	_, probs := parse(b)
	return probs
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

func parse(b []byte) (*Rules, []Problem) {
	var f file
	var probs []Problem
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		// Unknown fields and wrong types are reported with the rest of
		// the checks; a file that is not YAML stops here.
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, []Problem{yamlProblem(strings.TrimPrefix(err.Error(), "yaml: "))}
		}
		for _, m := range te.Errors {
			probs = append(probs, yamlProblem(m))
		}
	}
	var root yaml.Node
	_ = yaml.Unmarshal(b, &root)
	ruleNodes := rulesNodes(&root)
	if f.Version != 1 {
		probs = append(probs, Problem{Line: keyLine(&root, "version"), Message: fmt.Sprintf("version must be 1, got %d", f.Version)})
	}
	if f.Defaults.UnknownCode == "" {
		f.Defaults.UnknownCode = Pend
	}
	if !f.Defaults.UnknownCode.valid() || f.Defaults.UnknownCode == Modify {
		probs = append(probs, Problem{Line: keyLine(&root, "defaults"), Message: "defaults.unknownCode must be approve, deny or pend"})
	}
	if f.Defaults.AuthorizationDays == 0 {
		f.Defaults.AuthorizationDays = 180
	}
	sum := sha256.Sum256(b)
	version := hex.EncodeToString(sum[:6])
	if f.Label != "" {
		version = f.Label + "@" + version
	}
	r := &Rules{Payers: f.Payers, Defaults: f.Defaults, Version: version, byCode: map[string][]*Rule{}}
	seen := map[string]int{}
	for i, rule := range f.Rules {
		rule.order = i
		var node *yaml.Node
		if i < len(ruleNodes) {
			node = ruleNodes[i]
			rule.line = node.Line
		}
		name := fmt.Sprintf("rule %d (%s)", i+1, rule.ID)
		bad := false
		for _, err := range rule.check() {
			probs = append(probs, Problem{Line: rule.line, Message: name + ": " + err.Error()})
			bad = true
		}
		if rule.Criteria != nil {
			for _, p := range rule.Criteria.compile("criteria", valueOf(node, "criteria"), map[string]bool{}) {
				p.Message = name + ": " + p.Message
				if p.Line == 0 {
					p.Line = rule.line
				}
				probs = append(probs, p)
				bad = true
			}
		}
		if first, dup := seen[rule.ID]; dup && rule.ID != "" {
			probs = append(probs, Problem{Line: rule.line, Message: fmt.Sprintf("%s: id %q is used twice (first at line %d)", name, rule.ID, first)})
			bad = true
		}
		seen[rule.ID] = rule.line
		if bad {
			continue
		}
		r.rules = append(r.rules, rule)
		exact := true
		for _, cs := range rule.Match.Codes {
			if len(cs.Prefixes) > 0 || len(cs.Codes) == 0 {
				exact = false
			}
		}
		if !exact {
			r.scan = append(r.scan, rule)
			continue
		}
		for _, cs := range rule.Match.Codes {
			for _, c := range cs.Codes {
				k := cs.System + "|" + c
				r.byCode[k] = append(r.byCode[k], rule)
			}
		}
	}
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
	return r, probs
}

func yamlProblem(msg string) Problem {
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Problem{Line: n, Message: m[2]}
	}
	return Problem{Message: msg}
}

// rulesNodes returns the YAML nodes of the rules list, in order.
func rulesNodes(root *yaml.Node) []*yaml.Node {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil
	}
	if n := valueOf(root.Content[0], "rules"); n != nil && n.Kind == yaml.SequenceNode {
		return n.Content
	}
	return nil
}

// valueOf returns the value node of key in mapping node m.
func valueOf(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func keyLine(root *yaml.Node, key string) int {
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		if n := valueOf(root.Content[0], key); n != nil {
			return n.Line
		}
	}
	return 0
}

func (r *Rule) check() []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if r.ID == "" {
		add("id is required")
	}
	if len(r.Match.Codes) == 0 {
		add("match.codes is required")
	}
	canon := func(sets []CodeSet) {
		for i := range sets {
			sets[i].System = Canonical(sets[i].System)
		}
	}
	canon(r.Match.Codes)
	canon(r.Match.Diagnoses)
	for _, cs := range r.Match.Codes {
		if cs.System == "" {
			add("every match.codes entry needs a system")
		} else if !KnownSystem(cs.System) {
			add("match.codes system %q is not a code system Priora knows (see coverage/systems.go)", cs.System)
		}
		if len(cs.Codes) == 0 && len(cs.Prefixes) == 0 {
			add("match.codes for %s lists no codes or prefixes", cs.System)
		}
	}
	for _, cs := range r.Match.Diagnoses {
		if !KnownSystem(cs.System) {
			add("match.diagnoses system %q is not a code system Priora knows", cs.System)
		}
	}
	for _, c := range append(slices.Clone(r.CRD.Companions), derefCode(r.CRD.Alternative)...) {
		if !KnownSystem(Canonical(c.System)) {
			add("crd code system %q is not a code system Priora knows", c.System)
		}
	}
	d := r.Decision
	if !d.Action.valid() {
		add("decision.action %q must be approve, deny, pend or modify", d.Action)
	}
	if d.Action == Modify && d.AuthorizeQuantity <= 0 {
		add("a modify decision needs authorizeQuantity > 0")
	}
	if d.Then != "" {
		if d.Action != Pend {
			add("decision.then is only for pend decisions")
		}
		if !d.Then.valid() || d.Then == Pend || d.Then == Modify {
			add("decision.then %q must be approve or deny", d.Then)
		}
		if d.After.Duration <= 0 {
			add("decision.then needs decision.after, e.g. 30s")
		}
	}
	if d.Action == Deny && d.ReasonCode == "" && d.Note == "" {
		add("a deny decision needs a reasonCode or a note")
	}
	for _, rc := range []string{d.ReasonCode, r.DenyReasonCode} {
		if rc != "" && !KnownReasonCode(rc) {
			add("reason code %q is not in the shipped X12 review decision reason list (coverage/x12.go)", rc)
		}
	}
	for _, code := range d.RequestInfo {
		if !looksLOINC(code) {
			add("decision.requestInfo %q is not a LOINC code", code)
		}
	}
	switch r.OnNotMet {
	case "", Pend:
	case Deny:
		if r.Criteria == nil || !r.Criteria.hasAdministrative() {
			add("onNotMet: deny needs at least one administrative criterion (clinical criteria never deny)")
		}
		if r.DenyReasonCode == "" {
			add("onNotMet: deny needs denyReasonCode")
		}
	default:
		add("onNotMet %q must be pend or deny", r.OnNotMet)
	}
	if r.OnNotMet != "" && r.Criteria == nil {
		add("onNotMet goes with criteria")
	}
	for _, v := range []struct{ key, val string }{{"validFrom", r.ValidFrom}, {"validTo", r.ValidTo}} {
		if v.val == "" {
			continue
		}
		if _, err := time.Parse("2006-01-02", v.val); err != nil {
			add("%s %q is not a date (YYYY-MM-DD)", v.key, v.val)
		}
	}
	if r.ValidFrom != "" && r.ValidTo != "" && r.ValidTo < r.ValidFrom {
		add("validTo %s is before validFrom %s", r.ValidTo, r.ValidFrom)
	}
	for _, npi := range r.CRD.GoldCard {
		if !ValidNPI(npi) {
			add("crd.goldCard %q is not an NPI (10 digits with a valid check digit)", npi)
		}
	}
	if c := r.CRD; c.Covered != "" && !oneOf(c.Covered, "covered", "not-covered", "conditional") {
		add("crd.covered %q must be covered, not-covered or conditional", c.Covered)
	}
	if c := r.CRD; c.PANeeded != "" && !oneOf(c.PANeeded, "auth-needed", "no-auth", "satisfied", "performpa", "conditional") {
		add("crd.paNeeded %q is not a CRD pa-needed code", c.PANeeded)
	}
	if c := r.CRD; c.DocNeeded != "" && !oneOf(c.DocNeeded, "clinical", "admin", "patient", "conditional", "no-doc") {
		add("crd.docNeeded %q is not a CRD doc-needed code", c.DocNeeded)
	}
	return errs
}

func derefCode(c *Code) []Code {
	if c == nil {
		return nil
	}
	return []Code{*c}
}

// ValidNPI checks an NPI's form and Luhn check digit (computed with the
// 80840 prefix, as CMS's NPI standard says).
func ValidNPI(npi string) bool {
	if len(npi) != 10 {
		return false
	}
	sum := 24 // the prefix 80840 contributes 24
	for i := 0; i < 9; i++ {
		ch := npi[8-i]
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
	return npi[9] >= '0' && npi[9] <= '9' && int(npi[9]-'0') == (10-sum%10)%10
}

func oneOf(s string, opts ...string) bool {
	for _, o := range opts {
		if s == o {
			return true
		}
	}
	return false
}

// Service is one requested item or order, as coverage rules see it.
type Service struct {
	// Codes of the service (CPT, HCPCS, NDC, RxNorm, X12 service type …).
	Codes          []Code
	Quantity       float64
	Diagnoses      []Code
	PlaceOfService string
	// Payers are the identifiers of the Coverage.payor organization.
	Payers []PayerID
	// Plan is the member's plan on the roster when the member was found
	// there, else the plan identifier from Coverage.class.
	Plan string
	// Today (YYYY-MM-DD) selects the rules in effect (validFrom/validTo)
	// and is %today in criteria; empty ignores effective dates.
	Today string
	// Providers are the NPIs of the ordering and requesting providers: a
	// rule's gold-card NPIs among them approve without criteria (PAS).
	Providers []string
	// Request is the data criteria read; nil leaves every criterion
	// unknown. LoadRequest, when Request is nil, builds it on first need
	// (only a rule with criteria reads it).
	Request     *Request
	LoadRequest func() *Request
	// Member is what the payer's roster says of the member (nil when no
	// roster is in force): for policy criteria (%member).
	Member *members.View
}

// Outcome is the rules' answer for one service.
type Outcome struct {
	// Rule that matched, or nil when the default applied.
	Rule     *Rule
	Decision Decision
	// Reason explains the outcome for reviewers and logs.
	Reason string
	// Criteria are the rule's leaf criteria with their findings, in file
	// order (empty for rules without criteria or a gold-carded provider).
	Criteria []CriterionResult
	// GoldCard is the gold-carded provider NPI the approval rests on.
	GoldCard string
	// Version is the rules version that decided.
	Version string
}

// Unknown returns the criteria whose data is absent.
func (o Outcome) Unknown() []CriterionResult {
	var out []CriterionResult
	for _, c := range o.Criteria {
		if c.Finding == Unknown {
			out = append(out, c)
		}
	}
	return out
}

// RuleID is the matched rule's id, or "default".
func (o Outcome) RuleID() string {
	if o.Rule == nil {
		return "default"
	}
	return o.Rule.ID
}

// Decide evaluates the rules for a service.
func (r *Rules) Decide(s Service) Outcome {
	s.Codes, s.Diagnoses = canonical(s.Codes), canonical(s.Diagnoses)
	if rule := r.match(s); rule != nil {
		out := rule.decide(s)
		out.Version = r.Version
		return out
	}
	d := Decision{Action: r.Defaults.UnknownCode}
	reason := "no coverage rule names this code; default action " + string(d.Action)
	if d.Action == Deny {
		d.Note = "The requested service is not covered by any coverage policy of this plan."
	}
	return Outcome{Decision: d, Reason: reason, Version: r.Version}
}

// decide is a matched rule's outcome: gold card, then criteria.
func (rule *Rule) decide(s Service) Outcome {
	reason := rule.Decision.Reason
	if reason == "" {
		reason = rule.Description
	}
	out := Outcome{Rule: rule, Decision: rule.Decision, Reason: reason}
	if rule.Decision.Action != Deny {
		for _, npi := range s.Providers {
			if slices.Contains(rule.CRD.GoldCard, npi) {
				out.GoldCard = npi
				out.Decision = Decision{Action: Approve, AuthorizationDays: rule.Decision.AuthorizationDays,
					Note: "Approved without review: the provider is gold-carded for this service."}
				out.Reason = "gold-carded provider " + npi
				return out
			}
		}
	}
	if rule.Criteria == nil {
		return out
	}
	var req Request
	if s.Request == nil && s.LoadRequest != nil {
		s.Request = s.LoadRequest()
	}
	if s.Request != nil {
		req = *s.Request
	}
	req.Today = s.Today
	if len(req.Member) == 0 && s.Member != nil && s.Member.Found {
		req.Member = memberValue(s.Member)
	}
	found := rule.Criteria.evaluate(rule, &req, req.env(), &out.Criteria)
	var unknown, notMet []string
	var info []string
	clinicalNotMet := false
	for _, c := range out.Criteria {
		switch c.Finding {
		case Unknown:
			unknown = append(unknown, c.Description)
			for _, code := range c.RequestInfo {
				if !slices.Contains(info, code) {
					info = append(info, code)
				}
			}
		case NotMet:
			notMet = append(notMet, c.Description)
			if !c.Administrative {
				clinicalNotMet = true
			}
		}
	}
	switch found {
	case Met:
		out.Reason = "all criteria met: " + reason
		if out.Decision.Note == "" && out.Decision.Action == Approve {
			out.Decision.Note = "Approved: every coverage criterion of policy " + rule.ID + " is met."
		}
	case Unknown:
		out.Decision = Decision{Action: Pend, RequestInfo: info}
		out.Reason = "documentation needed: " + strings.Join(unknown, "; ")
		out.Decision.Note = "Pended: please send documentation showing: " + strings.Join(unknown, "; ") + "."
	case NotMet:
		if rule.OnNotMet == Deny && !clinicalNotMet {
			out.Decision = Decision{Action: Deny, ReasonCode: rule.DenyReasonCode, Note: rule.DenyNote}
			if out.Decision.Note == "" {
				out.Decision.Note = "Denied: " + strings.Join(notMet, "; ") + " — not met."
			}
			out.Reason = "administrative criteria not met: " + strings.Join(notMet, "; ")
			break
		}
		out.Decision = Decision{Action: Pend, RequestInfo: info}
		out.Reason = "criteria not met, clinical review: " + strings.Join(notMet, "; ")
		out.Decision.Note = "Pended for clinical review: not met — " + strings.Join(notMet, "; ") + "."
	}
	out.Decision.Reason = out.Reason
	return out
}

func (r *Rules) match(s Service) *Rule {
	var best *Rule
	for _, c := range s.Codes {
		for _, rule := range r.byCode[c.System+"|"+c.Code] {
			if (best == nil || rule.order < best.order) && rule.holds(s) {
				best = rule
			}
		}
	}
	for _, rule := range r.scan {
		if (best == nil || rule.order < best.order) && rule.codeMatches(s.Codes) && rule.holds(s) {
			best = rule
		}
	}
	return best
}

func (r *Rule) codeMatches(codes []Code) bool {
	for _, c := range codes {
		for _, cs := range r.Match.Codes {
			if cs.has(c) {
				return true
			}
		}
	}
	return false
}

func (cs CodeSet) has(c Code) bool {
	if c.System != cs.System {
		return false
	}
	for _, x := range cs.Codes {
		if x == c.Code {
			return true
		}
	}
	for _, p := range cs.Prefixes {
		if strings.HasPrefix(c.Code, p) {
			return true
		}
	}
	return false
}

// holds checks every condition other than the service code.
func (r *Rule) holds(s Service) bool {
	m := r.Match
	if len(m.Diagnoses) > 0 {
		ok := false
		for _, d := range s.Diagnoses {
			for _, cs := range m.Diagnoses {
				if cs.has(d) {
					ok = true
				}
			}
		}
		if !ok {
			return false
		}
	}
	if len(m.PlaceOfService) > 0 && !oneOf(s.PlaceOfService, m.PlaceOfService...) {
		return false
	}
	if q := m.Quantity; q != nil {
		if q.Min != nil && s.Quantity < *q.Min {
			return false
		}
		if q.Max != nil && s.Quantity > *q.Max {
			return false
		}
	}
	if len(m.Payers) > 0 && !anyPayer(s.Payers, m.Payers) {
		return false
	}
	if len(m.Plans) > 0 && !oneOf(s.Plan, m.Plans...) {
		return false
	}
	if s.Today != "" && ((r.ValidFrom != "" && s.Today < r.ValidFrom) || (r.ValidTo != "" && s.Today > r.ValidTo)) {
		return false
	}
	return true
}

// Serves reports whether a coverage from payers is one this instance serves.
// With no payers configured, every payer is served.
func (r *Rules) Serves(payers []PayerID) bool {
	if len(r.Payers) == 0 {
		return true
	}
	return anyPayer(payers, r.Payers)
}

func anyPayer(have, want []PayerID) bool {
	for _, h := range have {
		for _, w := range want {
			if h.Value == w.Value && (w.System == "" || h.System == w.System) {
				return true
			}
		}
	}
	return false
}

// All returns the rules in file order.
func (r *Rules) All() []*Rule { return r.rules }

// canonical copies codes with their systems folded to the canonical URIs.
func canonical(codes []Code) []Code {
	out := make([]Code, len(codes))
	for i, c := range codes {
		c.System = Canonical(c.System)
		out[i] = c
	}
	return out
}
