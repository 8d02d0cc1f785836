package coverage

// X12 review decision reason codes (HCR03; PAS reviewAction.reasonCode,
// code system https://codesystem.x12.org/external/886) that Priora's rules
// may use. X12 code lists are licensed: this list ships only the codes the
// sample policies and the reviewer desk need, each with a short description
// in Priora's own words of how Priora uses it, not X12's text. A payer adds
// the codes it is licensed to use here; `priora rules check` refuses any
// other code. Keep this the only list: PAS, the desk and utilization
// management read it through KnownReasonCode and ReasonCodes.
var reasonCodes = []ReasonCode{
	{"0U", "Priora use: the service is outside the plan's benefits (exclusion)."},
	{"0P", "Priora use: the requested quantity is over the plan's limit; fewer units authorized."},
}

// ReasonCode is one shipped X12 review decision reason code.
type ReasonCode struct {
	Code        string
	Description string
}

// ReasonCodes returns the shipped X12 review decision reason codes.
func ReasonCodes() []ReasonCode { return append([]ReasonCode(nil), reasonCodes...) }

// KnownReasonCode reports whether code is in the shipped list.
func KnownReasonCode(code string) bool {
	for _, rc := range reasonCodes {
		if rc.Code == code {
			return true
		}
	}
	return false
}
