// Package coverage holds a payer's coverage rules and answers, for one
// requested service, what the payer requires and decides. The same rules
// drive CRD (does this order need prior authorization?) and PAS (approve,
// deny, pend or modify this item). The package knows nothing of FHIR wire
// formats or HTTP: callers hand it plain codes and quantities.
package coverage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
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
	rules    []*Rule
	// byCode indexes rules by "system|code" for the common exact-code case;
	// wildcard rules (code prefixes or no code) are in scan.
	byCode map[string][]*Rule
	scan   []*Rule
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
	ID          string   `yaml:"id"`
	Description string   `yaml:"description"`
	Category    string   `yaml:"category"`
	Match       Match    `yaml:"match"`
	Decision    Decision `yaml:"decision"`
	CRD         CRD      `yaml:"crd"`
	order       int
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
	Version  int       `yaml:"version"`
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

// Parse validates and compiles rules from YAML. Unknown keys are errors, so
// that a typo never silently disables a rule.
func Parse(b []byte) (*Rules, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("version must be 1, got %d", f.Version)
	}
	if f.Defaults.UnknownCode == "" {
		f.Defaults.UnknownCode = Pend
	}
	if !f.Defaults.UnknownCode.valid() || f.Defaults.UnknownCode == Modify {
		return nil, fmt.Errorf("defaults.unknownCode must be approve, deny or pend")
	}
	if f.Defaults.AuthorizationDays == 0 {
		f.Defaults.AuthorizationDays = 180
	}
	r := &Rules{Payers: f.Payers, Defaults: f.Defaults, byCode: map[string][]*Rule{}}
	seen := map[string]bool{}
	var errs []error
	for i, rule := range f.Rules {
		rule.order = i
		if err := rule.check(); err != nil {
			errs = append(errs, fmt.Errorf("rule %d (%s): %w", i+1, rule.ID, err))
			continue
		}
		if seen[rule.ID] {
			errs = append(errs, fmt.Errorf("rule %d: id %q is used twice", i+1, rule.ID))
			continue
		}
		seen[rule.ID] = true
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
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Rule) check() error {
	if r.ID == "" {
		return errors.New("id is required")
	}
	if len(r.Match.Codes) == 0 {
		return errors.New("match.codes is required")
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
			return errors.New("every match.codes entry needs a system")
		}
		if len(cs.Codes) == 0 && len(cs.Prefixes) == 0 {
			return fmt.Errorf("match.codes for %s lists no codes or prefixes", cs.System)
		}
	}
	d := r.Decision
	if !d.Action.valid() {
		return fmt.Errorf("decision.action %q must be approve, deny, pend or modify", d.Action)
	}
	if d.Action == Modify && d.AuthorizeQuantity <= 0 {
		return errors.New("a modify decision needs authorizeQuantity > 0")
	}
	if d.Then != "" {
		if d.Action != Pend {
			return errors.New("decision.then is only for pend decisions")
		}
		if !d.Then.valid() || d.Then == Pend || d.Then == Modify {
			return fmt.Errorf("decision.then %q must be approve or deny", d.Then)
		}
		if d.After.Duration <= 0 {
			return errors.New("decision.then needs decision.after, e.g. 30s")
		}
	}
	if d.Action == Deny && d.ReasonCode == "" && d.Note == "" {
		return errors.New("a deny decision needs a reasonCode or a note")
	}
	if c := r.CRD; c.Covered != "" && !oneOf(c.Covered, "covered", "not-covered", "conditional") {
		return fmt.Errorf("crd.covered %q must be covered, not-covered or conditional", c.Covered)
	}
	if c := r.CRD; c.PANeeded != "" && !oneOf(c.PANeeded, "auth-needed", "no-auth", "satisfied", "performpa", "conditional") {
		return fmt.Errorf("crd.paNeeded %q is not a CRD pa-needed code", c.PANeeded)
	}
	if c := r.CRD; c.DocNeeded != "" && !oneOf(c.DocNeeded, "clinical", "admin", "patient", "conditional", "no-doc") {
		return fmt.Errorf("crd.docNeeded %q is not a CRD doc-needed code", c.DocNeeded)
	}
	return nil
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
		reason := rule.Decision.Reason
		if reason == "" {
			reason = rule.Description
		}
		return Outcome{Rule: rule, Decision: rule.Decision, Reason: reason}
	}
	d := Decision{Action: r.Defaults.UnknownCode}
	reason := "no coverage rule names this code; default action " + string(d.Action)
	if d.Action == Deny {
		d.Note = "The requested service is not covered by any coverage policy of this plan."
	}
	return Outcome{Decision: d, Reason: reason}
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
