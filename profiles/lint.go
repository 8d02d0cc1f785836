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
		return v.ValidateCRDHookRequest(raw)
	}
	if probe.ResourceType != "Bundle" {
		return v.Validate(raw)
	}
	for _, p := range probe.Meta.Profile {
		switch {
		case sameURL(p, PASRequestBundle):
			return v.ValidatePASRequest(raw)
		case sameURL(p, PASInquiryRequestBundle):
			return v.ValidatePASInquiry(raw)
		case sameURL(p, PASResponseBundle):
			return v.ValidatePASResponse(raw)
		case sameURL(p, PASInquiryResponseBundle):
			return v.ValidatePASInquiryResponse(raw)
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
			return v.ValidatePASInquiry(raw)
		case first.ResourceType == "Claim":
			return v.ValidatePASRequest(raw)
		case first.ResourceType == "ClaimResponse" && inquiry:
			return v.ValidatePASInquiryResponse(raw)
		case first.ResourceType == "ClaimResponse":
			return v.ValidatePASResponse(raw)
		}
	}
	return v.Validate(raw)
}
