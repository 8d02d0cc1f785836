package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/profiles"
)

// errInvalid reports that validation found errors; the issues are already
// printed, so main prints nothing more.
var errInvalid = errors.New("validation errors")

// validate is `priora validate [--profile URL] FILE...`: it validates FHIR
// JSON files as Priora does and prints one line per error or warning,
//
//	file: severity expression: diagnostics
//
// It returns errInvalid when any file has an error or fatal issue.
func validate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("priora validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profile := fs.String("profile", "", "validate every file against this profile (canonical URL, optionally url|version) instead of choosing by content")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), validateUsage)
		fs.PrintDefaults()
		fmt.Fprintln(fs.Output(), "\nTolerated (reported as warnings):")
		for _, d := range profiles.KnownIGDefects() {
			fmt.Fprintf(fs.Output(), "  extension %s on %s\n", d.Extension, d.Context)
		}
		for _, t := range profiles.Tolerances() {
			fmt.Fprintf(fs.Output(), "  %s at %s: %s\n", t.Profile, t.Path, t.Reason)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	files := fs.Args()
	if len(files) == 0 {
		fs.Usage()
		return errUsage
	}
	reg, err := profiles.Load()
	if err != nil {
		return err
	}
	v := reg.NewValidator(profiles.Options{})
	var n int
	if *profile != "" {
		n, err = v.LintProfile(stdout, files, *profile)
	} else {
		n, err = lintFiles(stdout, v, files)
	}
	if err != nil {
		return err
	}
	if n > 0 {
		fmt.Fprintf(stderr, "%d error(s)\n", n)
		return errInvalid
	}
	return nil
}

const validateUsage = `Usage: priora validate [--profile URL] FILE...

Validates FHIR R4 JSON files against the PAS 2.2.1, CRD 2.0.1 and US Core
profiles, as Priora validates requests, and prints one line per error or
warning: "file: severity expression: diagnostics". Without --profile each
file is validated by its content: a PAS request, inquiry or response Bundle
(by meta.profile, or by its first entry) with its PAS profile, a CDS Hooks
request against the CRD profiles, anything else against its meta.profile.
Exits non-zero when any file has an error.

`

// lintFiles validates each file as Priora does: a PAS request or inquiry
// Bundle through pas.CheckRequest, the very checks Claim/$submit and
// Claim/$inquire make (Parameters wrapper, base R4 parse, PAS Bundle rules,
// profiles); anything else by profiles.Validator.Lint. It prints one line
// per error or warning and returns the number of errors.
func lintFiles(w io.Writer, v *profiles.Validator, files []string) (int, error) {
	parser, err := fhir.NewParser()
	if err != nil {
		return 0, err
	}
	errs := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return errs, err
		}
		profile := profiles.PASRequestProfile(raw)
		if profile == "" {
			n, err := v.Lint(w, []string{f})
			errs += n
			if err != nil {
				return errs, err
			}
			continue
		}
		// Warnings are printed too: keep what the validator found, printed
		// when every check passed (on failure the error holds it all).
		var warned []fhir.Issue
		validate := pas.ProfileValidator(v)
		cerr := pas.CheckRequest(context.Background(), parser, func(ctx context.Context, raw []byte, tree profiles.Node, profile string) []fhir.Issue {
			warned = validate(ctx, raw, tree, profile)
			return warned
		}, raw, profile)
		found := fhir.IssuesOf(cerr)
		if cerr == nil {
			found = warned
		}
		for _, is := range found {
			if is.Severity == "error" || is.Severity == "fatal" {
				errs++
			}
			expr := is.Expression
			if expr == "" {
				expr = "-"
			}
			if _, err := fmt.Fprintf(w, "%s: %s %s: %s\n", f, is.Severity, expr, is.Diagnostics); err != nil {
				return errs, err
			}
		}
	}
	return errs, nil
}
