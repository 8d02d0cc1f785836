package pas

import "github.com/priora/priora/fhir"

// CheckRequest runs on body every check Claim/$submit (profile
// ProfileRequestBundle) or Claim/$inquire (ProfileInquiryRequestBundle)
// makes before it looks anything up: the Parameters wrapper, the base R4
// parse, the PAS Bundle rules (one Claim first, resolvable references,
// absolute or urn:uuid fullUrls, unique supportingInfo sequences, known
// modifier extensions, ...) and, when validate is not nil, profile
// validation. It returns nil or the *fhir.Error the operation answers with.
// Submit and Inquire run these checks; `priora validate` runs this.
func CheckRequest(p *fhir.Parser, validate func(raw []byte, profile string) []fhir.Issue, body []byte, profile string) error {
	want := "PAS request Bundle"
	if profile == ProfileInquiryRequestBundle {
		want = "PAS inquiry Bundle"
	}
	raw, err := unwrapParameters(body, want)
	if err != nil {
		return err
	}
	if err := p.Check(raw); err != nil {
		return err
	}
	if profile == ProfileInquiryRequestBundle {
		_, err = parseInquiry(raw)
	} else {
		_, err = parseRequest(raw)
	}
	if err != nil {
		return err
	}
	if validate != nil {
		return profileErrors(validate(raw, profile))
	}
	return nil
}
