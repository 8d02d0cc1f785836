package profiles

import "encoding/json"

// OperationOutcome renders the result as a FHIR R4 OperationOutcome (JSON),
// one issue per Issue, with the FHIRPath location in issue.expression.
// An empty result renders a single "informational" issue, as FHIR
// requires at least one.
func (r Result) OperationOutcome() []byte {
	type issue struct {
		Severity    string   `json:"severity"`
		Code        string   `json:"code"`
		Diagnostics string   `json:"diagnostics,omitempty"`
		Expression  []string `json:"expression,omitempty"`
	}
	oo := struct {
		ResourceType string  `json:"resourceType"`
		Issue        []issue `json:"issue"`
	}{ResourceType: "OperationOutcome"}
	for _, is := range r.Issues {
		it := issue{Severity: is.Severity, Code: is.Code, Diagnostics: is.Diagnostics}
		if is.Expression != "" {
			it.Expression = []string{is.Expression}
		}
		oo.Issue = append(oo.Issue, it)
	}
	if len(oo.Issue) == 0 {
		oo.Issue = append(oo.Issue, issue{Severity: SeverityInformation, Code: "informational", Diagnostics: "No issues found"})
	}
	b, _ := json.Marshal(oo) // cannot fail: strings and slices only
	return b
}
