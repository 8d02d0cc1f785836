package fhir

import "encoding/json"

// OperationOutcome renders issues as an R4 OperationOutcome.
func OperationOutcome(issues []Issue) []byte {
	type issue struct {
		Severity    string   `json:"severity"`
		Code        string   `json:"code"`
		Diagnostics string   `json:"diagnostics,omitempty"`
		Expression  []string `json:"expression,omitempty"`
	}
	out := struct {
		ResourceType string  `json:"resourceType"`
		Issue        []issue `json:"issue"`
	}{ResourceType: "OperationOutcome"}
	for _, is := range issues {
		o := issue{Severity: is.Severity, Code: is.Code, Diagnostics: is.Diagnostics}
		if o.Severity == "" {
			o.Severity = "error"
		}
		if o.Code == "" {
			o.Code = "processing"
		}
		if is.Expression != "" {
			o.Expression = []string{is.Expression}
		}
		out.Issue = append(out.Issue, o)
	}
	b, _ := json.Marshal(out) // cannot fail: plain strings only
	return b
}
