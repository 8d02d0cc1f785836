package pas

import (
	"context"
	"fmt"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/profiles"
)

// Validate is profile validation of a PAS Bundle: the findings about raw
// under profile (ProfileRequestBundle or ProfileInquiryRequestBundle).
// tree is raw already decoded (profiles.ParseDoc), which the validator
// reads instead of decoding raw again, or the zero Node when raw did not
// decode (the validator then reports why).
type Validate func(ctx context.Context, raw []byte, tree profiles.Node, profile string) []fhir.Issue

// CheckRequest runs on body every check Claim/$submit (profile
// ProfileRequestBundle) or Claim/$inquire (ProfileInquiryRequestBundle)
// makes before it looks anything up: the Parameters wrapper, the base R4
// parse, the PAS Bundle rules (one Claim first, resolvable references,
// absolute or urn:uuid fullUrls, unique supportingInfo sequences, known
// modifier extensions, ...) and, when validate is not nil, profile
// validation. It returns nil or the *fhir.Error the operation answers with.
// $submit, $inquire, `priora validate` and the conformance suite's input
// checks all run it, so they cannot disagree.
func CheckRequest(ctx context.Context, p *fhir.Parser, validate Validate, body []byte, profile string) error {
	_, err := checkRequest(ctx, p, validate, body, profile)
	return err
}

// checked is a Bundle that passed checkRequest, decoded once: the business
// logic reads req (a request Bundle) or inq (an inquiry) from here.
type checked struct {
	raw []byte // the Bundle (unwrapped from Parameters)
	req *request
	inq *inquiry
}

// checkRequest is CheckRequest returning the decoded Bundle. Profile
// validation runs beside the base R4 check and the PAS Bundle rules, which
// it does not depend on: a request then waits for the longer of them, not
// their sum (the CPU is the same). Its outcome is read only after those
// have passed, so a bad request gets the same answer as when they ran one
// after the other.
func checkRequest(ctx context.Context, p *fhir.Parser, validate Validate, body []byte, profile string) (*checked, error) {
	want := "PAS request Bundle"
	if profile == ProfileInquiryRequestBundle {
		want = "PAS inquiry Bundle"
	}
	// The body is decoded once into a tree that the profile validator
	// and intake share; google/fhir's strict parse (p.Check) stays the
	// R4 gate and reads the bytes itself.
	src, err := unwrapParameters(newSource(body), want)
	if err != nil {
		return nil, err
	}
	raw := src.raw
	validated := validateAsync(ctx, validate, src, profile)
	if err := p.Check(raw); err != nil {
		return nil, err
	}
	c := &checked{raw: raw}
	if profile == ProfileInquiryRequestBundle {
		c.inq, err = parseInquiry(src)
	} else {
		c.req, err = parseRequest(src)
	}
	if err != nil {
		return nil, err
	}
	if err := <-validated; err != nil {
		return nil, err
	}
	return c, nil
}

// validateAsync runs validate on raw in a goroutine; the channel gets its
// verdict (nil when validate is nil).
func validateAsync(ctx context.Context, validate Validate, src source, profile string) <-chan error {
	out := make(chan error, 1)
	if validate == nil {
		out <- nil
		return out
	}
	go func() {
		defer func() {
			if r := recover(); r != nil {
				out <- fmt.Errorf("pas: profile validation panicked: %v", r)
			}
		}()
		out <- profileErrors(validate(ctx, src.raw, src.tree, profile))
	}()
	return out
}

// profileErrors turns validator findings into a 400 when any is an error.
func profileErrors(found []fhir.Issue) error {
	for _, is := range found {
		if is.Severity == "error" || is.Severity == "fatal" {
			return &fhir.Error{Kind: fhir.Invalid, Message: "the Bundle does not conform to the PAS profiles", Issues: found}
		}
	}
	return nil
}

// ProfileValidator is a Validate that runs v, the PAS profiles' validator,
// and keeps its errors and warnings (what `priora validate` and the
// conformance suite check inputs with; the server adds its validation
// mode, internal/app).
func ProfileValidator(v *profiles.Validator) Validate {
	return func(_ context.Context, raw []byte, tree profiles.Node, profile string) []fhir.Issue {
		var res profiles.Result
		if profile == ProfileInquiryRequestBundle {
			res = v.ValidatePASInquiryTree(raw, tree)
		} else {
			res = v.ValidatePASRequestTree(raw, tree)
		}
		var found []fhir.Issue
		for _, is := range res.Issues {
			if is.Severity != profiles.SeverityInformation {
				found = append(found, fhir.Issue{Severity: is.Severity, Code: is.Code, Diagnostics: is.Diagnostics, Expression: is.Expression})
			}
		}
		return found
	}
}
