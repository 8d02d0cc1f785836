package profiles

import "strings"

// contextDefects lists places where the IGs' own profiles put an
// extension where the extension's context does not allow it. The Java
// validator reports these as errors and the PAS test kit suppresses them
// (inferno-framework/davinci-pas-test-kit,
// lib/davinci_pas_test_kit/cross_suite/validator_suppressions.rb); Priora
// reports them as warnings. Anything not listed here is an error.
var contextDefects = []struct {
	ext     string // extension URL (any version)
	context string // FHIR path where a profile places it
	reason  string
}{
	{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-authorizationNumber", "Claim",
		"PAS profile-claim-base marks extension-authorizationNumber must-support on Claim.extension, but its context lists Claim.item only"},
	{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-administrationReferenceNumber", "Claim",
		"PAS profile-claim-base uses extension-administrationReferenceNumber on Claim, but its context lists Claim.item and ClaimResponse only"},
	{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-communicatedDiagnosis", "ClaimResponse.item",
		"PAS profile-claimresponse places extension-communicatedDiagnosis on ClaimResponse.item, outside its declared context"},
	{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-productOrServiceCodeEnd", "ServiceRequest",
		"PAS profile-servicerequest marks extension-productOrServiceCodeEnd must-support on ServiceRequest, but its context lists Claim.item/ClaimResponse only"},
	{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-productOrServiceCodeEnd", "ClaimResponse.addItem",
		"PAS profile-claimresponse places extension-productOrServiceCodeEnd on ClaimResponse.addItem, outside its declared context"},
	{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-infoChanged", "Claim.supportingInfo",
		"PAS profile-claim-base marks extension-infoChanged must-support on Claim.supportingInfo, but its context lists Claim.item only"},
	{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/modifierextension-infoCancelled", "Claim.supportingInfo",
		"PAS profile-claim-base marks modifierextension-infoCancelled on Claim.supportingInfo, but its context lists Claim.item only"},
	{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-itemAuthorizedProvider", "ClaimResponse",
		"PAS profile-claimresponse places extension-itemAuthorizedProvider on the ClaimResponse root, outside its declared context"},
	{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-reviewActionCode", "ClaimResponse.adjudication.extension",
		"PAS 2.2.1 allows extension-reviewAction on ClaimResponse.adjudication (header-level review action) but the context of its reviewActionCode part omits it; the IG's CI build adds it"},
	{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-certificationType", "ClaimResponse.addItem",
		"PAS profile-claimresponse places extension-certificationType on ClaimResponse.addItem, outside its declared context"},
	{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-serviceItemRequestType", "ClaimResponse.addItem",
		"PAS profile-claimresponse places extension-serviceItemRequestType on ClaimResponse.addItem, outside its declared context"},
	{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-revenueUnitRateLimit", "ClaimResponse.addItem",
		"PAS profile-claimresponse places extension-revenueUnitRateLimit on ClaimResponse.addItem, outside its declared context"},
}

// knownContextDefect returns the documented reason when an extension used
// at path is a known IG defect, else "".
func knownContextDefect(ext, path string) string {
	ext, _, _ = strings.Cut(ext, "|")
	for _, d := range contextDefects {
		if d.ext == ext && d.context == path {
			return d.reason
		}
	}
	return ""
}

// IGDefect describes one known defect of the embedded IGs that Priora
// tolerates (reports as a warning instead of an error).
type IGDefect struct {
	Extension, Context, Reason string
}

// KnownIGDefects lists the tolerated IG defects, for documentation and
// for the `priora validate` help text.
func KnownIGDefects() []IGDefect {
	out := make([]IGDefect, len(contextDefects))
	for i, d := range contextDefects {
		out[i] = IGDefect{d.ext, d.context, d.reason}
	}
	return out
}

// tolerances lists rules of a profile, at one element, that common test
// data breaks in a way Priora accepts: their findings are warnings, not
// errors, and a reference target whose only errors they were conforms to
// its target profile. A rule here is one of the profile's cardinality,
// fixed/pattern or binding rules at path (an ElementDefinition path, with
// ":sliceName" for a slice). Every entry names the data that needs it;
// remove it when that data is fixed.
var tolerances = []struct {
	profile string // canonical URL of the profile (any version)
	path    string // ElementDefinition path the rule is on
	reason  string
}{
	{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-documentreference", "DocumentReference.content.attachment.data",
		"the Inferno PAS test kit's preset request Bundles (approval, denial, pended, must-support, claim updates) carry a DocumentReference whose attachment has a url and no data; PAS 2.2.1 requires data. us-core-6 (url or data) still applies"},
	{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-documentreference", "DocumentReference.content.attachment.url",
		"the same kit DocumentReference sends attachment.url, which PAS 2.2.1 prohibits (0..0)"},
	{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claim", "Claim.item.revenue",
		"the kit's preset request Bundles code item.revenue in https://www.nubc.org/revenue-code; the required value set AHANUBCRevenueCodes draws on https://www.nubc.org/CodeSystem/RevenueCodes only"},
	{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claim-update", "Claim.item.revenue",
		"the kit's claim-update Bundles carry the same item.revenue coding as its request Bundles"},
	{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claim-inquiry", "Claim.item.revenue",
		"the kit's inquiry Bundles carry the same item.revenue coding as its request Bundles"},
}

// tolerated returns the documented reason when the rule of profile src
// (url|version) at path is tolerated, else "".
func tolerated(src, path string) string {
	if src == "" {
		return ""
	}
	for _, t := range tolerances {
		if t.path == path && sameURL(t.profile, src) {
			return t.reason
		}
	}
	return ""
}

// Tolerance describes one profile rule whose findings Priora reports as
// warnings instead of errors, and why.
type Tolerance struct {
	Profile, Path, Reason string
}

// Tolerances lists the tolerated profile rules, for documentation and for
// the `priora validate` help text.
func Tolerances() []Tolerance {
	out := make([]Tolerance, len(tolerances))
	for i, t := range tolerances {
		out[i] = Tolerance{t.profile, t.path, t.reason}
	}
	return out
}
