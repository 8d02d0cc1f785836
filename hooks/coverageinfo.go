package hooks

import (
	"errors"
	"slices"
	"strings"

	"github.com/priora/priora/fhir"
)

// Reason codes of CRD's coverageAssertionReasons value set.
const (
	reasonGoldCard         = "gold-card"
	reasonNoMemberFound    = "no-member-found"
	reasonNoActiveCoverage = "no-active-coverage"
	reasonCoverageNotFound = "coverage-not-found"
	reasonTechnical        = "technical"
)

// coverageInfo is one coverage-information extension (CRD 2.2
// ext-coverage-information) before it is rendered.
type coverageInfo struct {
	Coverage      fhir.Reference
	Covered       string
	PANeeded      string
	DocNeeded     []string
	DocPurpose    []string
	InfoNeeded    []string
	BillingCodes  []fhir.Coding
	Reasons       []fhir.CodeableConcept
	Details       []detail
	Dependencies  []fhir.Reference
	Questionnaire []string
	Date          string
	AssertionID   string
	SatisfiedPAID string
	Contacts      []contactDetail
	ExpiryDate    string
}

// detail is a coverage-information detail: a qualified fact about coverage.
type detail struct {
	Category      string // cat-limitation | cat-decisional | cat-other
	Code          fhir.Coding
	ValueURL      string
	ValueString   string
	ValueQuantity *fhir.Quantity
	Qualification string
}

type contactDetail struct {
	Name    string         `json:"name,omitempty"`
	Telecom []contactPoint `json:"telecom,omitempty"`
}

type contactPoint struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

// ext is an output extension with the value types coverage information
// needs (fhir.Extension has no ContactDetail).
type ext struct {
	URL                  string                `json:"url"`
	Extension            []ext                 `json:"extension,omitempty"`
	ValueCode            string                `json:"valueCode,omitempty"`
	ValueString          string                `json:"valueString,omitempty"`
	ValueDate            string                `json:"valueDate,omitempty"`
	ValueURL             string                `json:"valueUrl,omitempty"`
	ValueCanonical       string                `json:"valueCanonical,omitempty"`
	ValueReference       *fhir.Reference       `json:"valueReference,omitempty"`
	ValueCoding          *fhir.Coding          `json:"valueCoding,omitempty"`
	ValueCodeableConcept *fhir.CodeableConcept `json:"valueCodeableConcept,omitempty"`
	ValueQuantity        *fhir.Quantity        `json:"valueQuantity,omitempty"`
	ValueContactDetail   *contactDetail        `json:"valueContactDetail,omitempty"`
}

func reasonCode(code, text string) fhir.CodeableConcept {
	return fhir.CodeableConcept{Coding: []fhir.Coding{{System: crdTempSystem, Code: code}}, Text: text}
}

func (ci *coverageInfo) hasReason() bool { return len(ci.Reasons) > 0 }

func (ci *coverageInfo) conditional() bool {
	return ci.Covered == "conditional" || ci.PANeeded == "conditional" || slices.Contains(ci.DocNeeded, "conditional")
}

// normalize makes the extension satisfy CRD's invariants crd-ci-q1..q9 by
// the least change: it drops what may not be said and adds what must be.
// fallbackReason is used where a reason is required and none was given.
func (ci *coverageInfo) normalize(version, fallbackReason string) {
	if version == crdVersion20 {
		// 2.0.1 has no indeterminate; say conditional and why.
		if ci.Covered == "indeterminate" {
			ci.Covered = "conditional"
			ci.InfoNeeded = appendUnique(ci.InfoNeeded, "OTH")
		}
		if ci.PANeeded == "indeterminate" {
			ci.PANeeded = "conditional"
		}
		ci.DocNeeded = slices.DeleteFunc(ci.DocNeeded, func(s string) bool { return s == "indeterminate" || s == "patient" })
		ci.ExpiryDate = ""
		// 2.0.1's crd-ci-q2, as its expression reads ("covered other than
		// not-covered implies pa-needed exists"), needs pa-needed on every
		// covered or conditional answer: when the rules did not say, it
		// is conditional as well.
		if ci.Covered != "not-covered" && ci.PANeeded == "" {
			ci.PANeeded = "conditional"
		}
	}
	if ci.Covered == "not-covered" { // q2
		ci.PANeeded = ""
		ci.SatisfiedPAID = ""
	}
	if ci.PANeeded != "satisfied" { // q5
		ci.SatisfiedPAID = ""
	}
	if ci.PANeeded == "satisfied" || ci.PANeeded == "no-auth" || ci.Covered == "not-covered" { // q4
		ci.DocPurpose = slices.DeleteFunc(ci.DocPurpose, func(s string) bool { return s == "withpa" })
	}
	if len(ci.DocNeeded) == 0 { // q1
		ci.Questionnaire = nil
		ci.DocPurpose = nil
	}
	if ci.conditional() && len(ci.InfoNeeded) == 0 { // q3
		ci.InfoNeeded = []string{"OTH"}
	}
	needReason := slices.Contains(ci.InfoNeeded, "OTH") || // q6
		slices.ContainsFunc(ci.DocPurpose, func(s string) bool { return s != "conditional" }) || // q8
		ci.Covered == "indeterminate" || ci.PANeeded == "indeterminate" || slices.Contains(ci.DocNeeded, "indeterminate") // q9
	if needReason && !ci.hasReason() {
		ci.Reasons = append(ci.Reasons, fhir.CodeableConcept{Text: fallbackReason})
	}
	for i := range ci.Reasons { // q7: a reason outside the value set needs text
		if ci.Reasons[i].Text == "" && !inReasonSet(ci.Reasons[i]) {
			ci.Reasons[i].Text = fallbackReason
		}
	}
}

func inReasonSet(cc fhir.CodeableConcept) bool {
	for _, c := range cc.Coding {
		if c.System == crdTempSystem {
			switch c.Code {
			case reasonGoldCard, reasonNoMemberFound, reasonNoActiveCoverage, reasonCoverageNotFound, "auth-out-network", reasonTechnical:
				return true
			}
		}
	}
	return false
}

// check reports the first broken invariant; normalize's output passes.
func (ci *coverageInfo) check() error {
	switch {
	case ci.Coverage.Reference == "" && ci.Coverage.Display == "":
		return errors.New("coverage is required")
	case ci.Covered == "":
		return errors.New("covered is required")
	case ci.Date == "" || ci.AssertionID == "":
		return errors.New("date and coverage-assertion-id are required")
	case len(ci.Questionnaire) > 0 && len(ci.DocNeeded) == 0:
		return errors.New("crd-ci-q1: questionnaire needs doc-needed")
	case ci.Covered == "not-covered" && ci.PANeeded != "":
		return errors.New("crd-ci-q2: not-covered allows no pa-needed")
	case ci.conditional() && len(ci.InfoNeeded) == 0:
		return errors.New("crd-ci-q3: conditional needs info-needed")
	case (ci.PANeeded == "satisfied" || ci.PANeeded == "no-auth") && slices.Contains(ci.DocPurpose, "withpa"):
		return errors.New("crd-ci-q4: no withpa documentation when no prior authorization is needed")
	case (ci.SatisfiedPAID != "") != (ci.PANeeded == "satisfied"):
		return errors.New("crd-ci-q5: satisfied-pa-id iff pa-needed is satisfied")
	case slices.Contains(ci.InfoNeeded, "OTH") && !ci.hasReason():
		return errors.New("crd-ci-q6: info-needed OTH needs a reason")
	case slices.ContainsFunc(ci.DocPurpose, func(s string) bool { return s != "conditional" }) && !ci.hasReason():
		return errors.New("crd-ci-q8: doc-purpose needs a reason")
	case (ci.Covered == "indeterminate" || ci.PANeeded == "indeterminate" || slices.Contains(ci.DocNeeded, "indeterminate")) && !ci.hasReason():
		return errors.New("crd-ci-q9: indeterminate needs a reason")
	}
	for _, r := range ci.Reasons {
		if r.Text == "" && !inReasonSet(r) {
			return errors.New("crd-ci-q7: a reason outside the value set needs text")
		}
	}
	return nil
}

// extension renders the coverage-information extension, sub-extensions in
// the profile's order.
func (ci *coverageInfo) extension() ext {
	e := ext{URL: coverageInfoURL, Extension: make([]ext, 0, 8)}
	add := func(x ext) { e.Extension = append(e.Extension, x) }
	cov := ci.Coverage
	add(ext{URL: "coverage", ValueReference: &cov})
	add(ext{URL: "covered", ValueCode: ci.Covered})
	if ci.PANeeded != "" {
		add(ext{URL: "pa-needed", ValueCode: ci.PANeeded})
	}
	for _, v := range ci.DocNeeded {
		add(ext{URL: "doc-needed", ValueCode: v})
	}
	for _, v := range ci.DocPurpose {
		add(ext{URL: "doc-purpose", ValueCode: v})
	}
	for _, v := range ci.InfoNeeded {
		add(ext{URL: "info-needed", ValueCode: v})
	}
	for i := range ci.BillingCodes {
		add(ext{URL: "billingCode", ValueCoding: &ci.BillingCodes[i]})
	}
	for i := range ci.Reasons {
		add(ext{URL: "reason", ValueCodeableConcept: &ci.Reasons[i]})
	}
	for _, d := range ci.Details {
		code := fhir.CodeableConcept{Coding: []fhir.Coding{d.Code}}
		sub := []ext{{URL: "category", ValueCode: d.Category}, {URL: "code", ValueCodeableConcept: &code}}
		switch {
		case d.ValueURL != "":
			sub = append(sub, ext{URL: "value", ValueURL: d.ValueURL})
		case d.ValueQuantity != nil:
			sub = append(sub, ext{URL: "value", ValueQuantity: d.ValueQuantity})
		default:
			sub = append(sub, ext{URL: "value", ValueString: d.ValueString})
		}
		if d.Qualification != "" {
			sub = append(sub, ext{URL: "qualification", ValueString: d.Qualification})
		}
		add(ext{URL: "detail", Extension: sub})
	}
	for i := range ci.Dependencies {
		add(ext{URL: "dependency", ValueReference: &ci.Dependencies[i]})
	}
	for _, q := range ci.Questionnaire {
		add(ext{URL: "questionnaire", ValueCanonical: q})
	}
	add(ext{URL: "date", ValueDate: ci.Date})
	add(ext{URL: "coverage-assertion-id", ValueString: ci.AssertionID})
	if ci.SatisfiedPAID != "" {
		add(ext{URL: "satisfied-pa-id", ValueString: ci.SatisfiedPAID})
	}
	for i := range ci.Contacts {
		add(ext{URL: "contact", ValueContactDetail: &ci.Contacts[i]})
	}
	if ci.ExpiryDate != "" {
		add(ext{URL: "expiry-date", ValueDate: ci.ExpiryDate})
	}
	return e
}

// parseContact turns a rule's contact text into a ContactDetail: a URL, an
// e-mail address or a phone number.
func parseContact(name, s string) contactDetail {
	s = strings.TrimSpace(s)
	sys := "phone"
	switch {
	case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"):
		sys = "url"
	case strings.Contains(s, "@"):
		sys = "email"
	}
	return contactDetail{Name: name, Telecom: []contactPoint{{System: sys, Value: s}}}
}

// existingCoverageInfo reads the decision part of coverage-information
// extensions an order already carries, to tell whether Priora has anything
// new to say (CRD resp-35).
func existingCoverageInfo(exts []fhir.Extension) (sig string, ok bool) {
	var parts []string
	for _, e := range exts {
		if e.URL != coverageInfoURL {
			continue
		}
		ok = true
		for _, s := range e.Extension {
			switch s.URL {
			case "coverage", "covered", "pa-needed", "doc-needed", "doc-purpose", "info-needed", "questionnaire":
				v := s.StringValue()
				if s.ValueReference != nil {
					v = relativeRef(s.ValueReference.Reference)
				}
				parts = append(parts, s.URL+"="+v)
			}
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ";"), ok
}

// signature is the same digest of a coverageInfo.
func (ci *coverageInfo) signature() string {
	parts := []string{"coverage=" + relativeRef(ci.Coverage.Reference), "covered=" + ci.Covered}
	if ci.PANeeded != "" {
		parts = append(parts, "pa-needed="+ci.PANeeded)
	}
	for _, v := range ci.DocNeeded {
		parts = append(parts, "doc-needed="+v)
	}
	for _, v := range ci.DocPurpose {
		parts = append(parts, "doc-purpose="+v)
	}
	for _, v := range ci.InfoNeeded {
		parts = append(parts, "info-needed="+v)
	}
	for _, v := range ci.Questionnaire {
		parts = append(parts, "questionnaire="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ";")
}

func appendUnique(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}
