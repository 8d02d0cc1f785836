package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/profiles"
)

// Profile validation modes (Config.Validation, PRIORA_VALIDATION).
const (
	// ValidationEnforce rejects requests whose profile validation finds
	// errors (PAS: 400 with every finding in an OperationOutcome).
	ValidationEnforce = "enforce"
	// ValidationLog validates, logs the number of errors and warnings and
	// where they are, and accepts the request.
	ValidationLog = "log"
	// ValidationOff skips profile validation; the base FHIR parse still
	// rejects what is not R4.
	ValidationOff = "off"
)

// maxLoggedExpressions bounds the locations one log line lists.
const maxLoggedExpressions = 20

// loadValidator checks the validation mode and loads the embedded
// conformance packages (about 10 ms; definitions compile on first use).
func loadValidator(log *slog.Logger, mode string, strict bool) (*profiles.Validator, error) {
	switch mode {
	case "", ValidationEnforce, ValidationLog, ValidationOff:
	default:
		return nil, fmt.Errorf("validation mode %q: want enforce, log or off", mode)
	}
	start := time.Now()
	reg, err := profiles.Load()
	if err != nil {
		return nil, fmt.Errorf("load FHIR profiles: %w", err)
	}
	log.Info("FHIR profiles loaded", "duration_ms", float64(time.Since(start).Microseconds())/1000, "validation", modeName(mode), "strict", strict)
	return reg.NewValidator(profiles.Options{Strict: strict}), nil
}

// tolerances are what validation accepts as warnings, one sentence each,
// for the CapabilityStatement: none under strict.
func tolerances(strict bool) []string {
	if strict {
		return nil
	}
	var out []string
	for _, t := range profiles.Tolerances() {
		out = append(out, t.Path+" ("+t.Profile+"): "+t.Reason)
	}
	for _, d := range profiles.KnownIGDefects() {
		out = append(out, d.Extension+" on "+d.Context+": "+d.Reason)
	}
	return out
}

func modeName(mode string) string {
	if mode == "" {
		return ValidationEnforce
	}
	return mode
}

// pasValidate is pas.Config.Validate for the configured mode: nil when
// validation is off.
func (a *App) pasValidate() pas.Validate {
	if a.Config.Validation == ValidationOff {
		return nil
	}
	return func(ctx context.Context, raw []byte, tree profiles.Node, profile string) []fhir.Issue {
		return a.Check(ctx, profile, func() profiles.Result {
			if profile == pas.ProfileInquiryRequestBundle {
				return a.Validator.ValidatePASInquiryTree(raw, tree)
			}
			return a.Validator.ValidatePASRequestTree(raw, tree)
		})
	}
}

// Check runs validate under the configured validation mode. Under enforce
// it returns the error and warning issues as fhir.Issues (the caller
// rejects the request when any is an error). Under log it logs the
// counts and the FHIRPath locations of the errors (never diagnostics,
// which may quote patient data) and returns nil. Under off it does not
// run validate. ctx is the request's: the log line carries its request
// id. what names the check in the log (a profile URL, or e.g.
// "crd-hook"). CRD hooks and Subscriptions use it the way PAS does:
//
//	issues := a.Check(ctx, "crd-hook", func() profiles.Result {
//		return a.Validator.ValidateCRDHookRequest(body)
//	})
func (a *App) Check(ctx context.Context, what string, validate func() profiles.Result) []fhir.Issue {
	return a.check(ctx, a.Config.Validation, what, validate)
}

// check is Check under an explicit mode.
func (a *App) check(ctx context.Context, mode, what string, validate func() profiles.Result) []fhir.Issue {
	if mode == ValidationOff {
		return nil
	}
	start := time.Now()
	res := validate()
	if mode != ValidationLog {
		return fhirIssues(res)
	}
	errs := res.Count(profiles.SeverityError) + res.Count(profiles.SeverityFatal)
	attrs := []any{
		"profile", what,
		"errors", errs,
		"warnings", res.Count(profiles.SeverityWarning),
		"duration_ms", float64(time.Since(start).Microseconds()) / 1000,
	}
	var where []string
	for _, is := range res.Errors() {
		if len(where) == maxLoggedExpressions {
			break
		}
		where = append(where, is.Expression)
	}
	level := slog.LevelInfo
	if errs > 0 {
		level = slog.LevelWarn
		attrs = append(attrs, "error_expressions", where)
	}
	a.Log.Log(ctx, level, "profile validation (log only, request accepted)", attrs...)
	return nil
}

// fhirIssues converts the error, fatal and warning issues of a result;
// information issues (codes from licensed systems that could not be
// checked) are left out of answers.
func fhirIssues(res profiles.Result) []fhir.Issue {
	var out []fhir.Issue
	for _, is := range res.Issues {
		if is.Severity == profiles.SeverityInformation {
			continue
		}
		out = append(out, fhir.Issue{Severity: is.Severity, Code: is.Code, Diagnostics: is.Diagnostics, Expression: is.Expression})
	}
	return out
}

// crdPackageVersion is the CRD package each answered CRD version is
// validated against.
var crdPackageVersion = map[string]string{"2.2": "2.2.0", "2.0": "2.0.1"}

// crdValidate is hooks.Config.Validate for Config.CRDValidation: the
// violations of profile rules by a call's FHIR resources, each checked
// against the CRD profile for its type of the CRD version the call is
// answered as, and against every profile it claims in meta.profile (US
// Core, say). Base FHIR findings alone do not make a call unprocessable.
// It is nil when CRD validation is off — its default, because it sits on
// the order-sign path (about 1 ms per call against a 0.4 ms answer),
// because orders at sign time are drafts that CRD must still answer for
// (resp-42: missing data is not an error), and because the IG's own
// example calls and the released conformance kit's bodies break the
// profiles.
func (a *App) crdValidate() func(ctx context.Context, body []byte, version string) []string {
	mode := a.Config.CRDValidation
	if mode == "" || mode == ValidationOff {
		return nil
	}
	byVersion := map[string]*profiles.Validator{}
	for v, pkg := range crdPackageVersion {
		byVersion[v] = a.Validator.ForCRD(pkg)
	}
	return func(ctx context.Context, body []byte, version string) []string {
		v := byVersion[version]
		if v == nil {
			v = byVersion["2.2"]
		}
		found := a.check(ctx, mode, "crd-hook", func() profiles.Result {
			r := v.ValidateCRDHookRequest(body)
			keep := r.Issues[:0]
			for _, is := range r.Issues {
				if is.Source != "" {
					keep = append(keep, is)
				}
			}
			r.Issues = keep
			return r
		})
		var out []string
		for _, is := range found {
			if is.Severity == "error" || is.Severity == "fatal" {
				out = append(out, is.Expression+": "+is.Diagnostics)
			}
		}
		return out
	}
}
