package profiles

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// Lint validates each file and prints its issues like a linter, one per
// line:
//
//	file: severity expression: diagnostics
//
// A file that is a PAS request, inquiry or response Bundle (recognised by
// its meta.profile, or for an unprofiled Bundle by its first entry) is
// validated with the matching PAS helper; a CDS Hooks request (a JSON
// object with "hook") with ValidateCRDHookRequest; anything else with
// Validate. Information issues are not printed. It returns the number of
// errors (error and fatal issues) across all files; err reports an
// unreadable file or a failed write, not validation errors.
func (v *Validator) Lint(w io.Writer, files []string) (errors int, err error) {
	return v.lint(w, files, v.lintOne)
}

// LintProfile is Lint with every file validated against one profile
// (canonical URL, optionally url|version): the PAS Bundle profiles go
// through their PAS helpers (a Parameters wrapper is accepted, references
// must resolve in the Bundle), any other profile through Validate.
func (v *Validator) LintProfile(w io.Writer, files []string, profile string) (errors int, err error) {
	return v.lint(w, files, func(raw []byte) Result {
		switch {
		case sameURL(profile, PASRequestBundle), sameURL(profile, PASInquiryRequestBundle),
			sameURL(profile, PASResponseBundle), sameURL(profile, PASInquiryResponseBundle):
			if _, ver, ok := strings.Cut(profile, "|"); ok && v.pasPkg >= 0 && ver != v.r.pkgs[v.pasPkg].Version {
				return v.Validate(raw, profile)
			}
			base, _, _ := strings.Cut(profile, "|")
			return v.validatePAS(raw, base)
		}
		return v.Validate(raw, profile)
	})
}

func (v *Validator) lint(w io.Writer, files []string, validate func([]byte) Result) (errors int, err error) {
	for _, f := range files {
		raw, rerr := os.ReadFile(f)
		if rerr != nil {
			return errors, rerr
		}
		res := validate(raw)
		for _, is := range res.Issues {
			if is.Severity == SeverityInformation {
				continue
			}
			if is.Severity == SeverityError || is.Severity == SeverityFatal {
				errors++
			}
			expr := is.Expression
			if expr == "" {
				expr = "-"
			}
			if _, werr := fmt.Fprintf(w, "%s: %s %s: %s\n", f, is.Severity, expr, is.Diagnostics); werr != nil {
				return errors, werr
			}
		}
	}
	return errors, nil
}

// Lint is Validator.Lint with a freshly loaded registry and default
// Options, for the `priora validate FILE...` command.
func Lint(w io.Writer, files []string) (errors int, err error) {
	r, err := Load()
	if err != nil {
		return 0, err
	}
	return r.NewValidator(Options{}).Lint(w, files)
}

func (v *Validator) lintOne(raw []byte) Result {
	kind, profile := classify(raw)
	switch {
	case kind == "hook":
		return v.ValidateCRDHookRequest(raw)
	case profile == PASRequestBundle:
		return v.ValidatePASRequest(raw)
	case profile == PASInquiryRequestBundle:
		return v.ValidatePASInquiry(raw)
	case profile == PASResponseBundle:
		return v.ValidatePASResponse(raw)
	case profile == PASInquiryResponseBundle:
		return v.ValidatePASInquiryResponse(raw)
	}
	return v.Validate(raw)
}

// PASRequestProfile says whether raw is a PAS request Bundle
// (PASRequestBundle) or inquiry Bundle (PASInquiryRequestBundle), by its
// meta.profile or its first entry, as `priora validate` decides; "" for
// anything else.
func PASRequestProfile(raw []byte) string {
	if _, p := classify(raw); p == PASRequestBundle || p == PASInquiryRequestBundle {
		return p
	}
	return ""
}

// classify tells a CDS Hooks request (kind "hook") from a FHIR resource,
// and for a PAS Bundle names its Bundle profile.
func classify(raw []byte) (kind, profile string) {
	var probe struct {
		ResourceType string `json:"resourceType"`
		Hook         string `json:"hook"`
		Meta         struct {
			Profile []string `json:"profile"`
		} `json:"meta"`
		Entry []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
				Meta         struct {
					Profile []string `json:"profile"`
				} `json:"meta"`
			} `json:"resource"`
		} `json:"entry"`
	}
	_ = json.Unmarshal(raw, &probe) // a syntax error is reported by the validator
	if probe.ResourceType == "" && probe.Hook != "" {
		return "hook", ""
	}
	if probe.ResourceType != "Bundle" {
		return "resource", ""
	}
	for _, p := range probe.Meta.Profile {
		for _, b := range []string{PASRequestBundle, PASInquiryRequestBundle, PASResponseBundle, PASInquiryResponseBundle} {
			if sameURL(p, b) {
				return "resource", b
			}
		}
	}
	if len(probe.Entry) > 0 {
		first := probe.Entry[0].Resource
		inquiry := false
		for _, p := range first.Meta.Profile {
			if sameURL(p, "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claim-inquiry") ||
				sameURL(p, "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claiminquiryresponse") {
				inquiry = true
			}
		}
		switch {
		case first.ResourceType == "Claim" && inquiry:
			return "resource", PASInquiryRequestBundle
		case first.ResourceType == "Claim":
			return "resource", PASRequestBundle
		case first.ResourceType == "ClaimResponse" && inquiry:
			return "resource", PASInquiryResponseBundle
		case first.ResourceType == "ClaimResponse":
			return "resource", PASResponseBundle
		}
	}
	return "resource", ""
}
