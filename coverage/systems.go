package coverage

// Code systems as written in the sample rules. Payers and EHRs spell some of
// them in more than one way; Canonical folds the known aliases so a rule
// written once matches them all.
const (
	CPT      = "http://www.ama-assn.org/go/cpt"
	HCPCS    = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
	NDC      = "http://hl7.org/fhir/sid/ndc"
	RxNorm   = "http://www.nlm.nih.gov/research/umls/rxnorm"
	ICD10CM  = "http://hl7.org/fhir/sid/icd-10-cm"
	X12Svc   = "https://codesystem.x12.org/005010/1365"
	LOINC    = "http://loinc.org"
	SNOMEDCT = "http://snomed.info/sct"
)

var aliases = map[string]string{
	"https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets": HCPCS,
	"https://bluebutton.cms.gov/resources/codesystem/hcpcs":    HCPCS,
	"urn:oid:2.16.840.1.113883.6.285":                          HCPCS,
	"urn:oid:2.16.840.1.113883.6.12":                           CPT,
	"https://www.ama-assn.org/go/cpt":                          CPT,
	"urn:oid:2.16.840.1.113883.6.90":                           ICD10CM,
	"http://www.cms.gov/Medicare/Coding/ICD10":                 ICD10CM,
	"urn:oid:2.16.840.1.113883.6.88":                           RxNorm,
	"urn:oid:2.16.840.1.113883.6.69":                           NDC,
}

// Canonical returns the system Priora's rules use for a code system URI.
func Canonical(system string) string {
	if c, ok := aliases[system]; ok {
		return c
	}
	return system
}

// systemPOS is the CMS place-of-service code system.
const systemPOS = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"

// KnownSystem reports whether a (canonical) code system URI is one rules
// may name: a typo in a system would silently match nothing.
func KnownSystem(system string) bool {
	switch system {
	case CPT, HCPCS, NDC, RxNorm, ICD10CM, X12Svc, LOINC, SNOMEDCT, systemPOS:
		return true
	}
	return false
}
