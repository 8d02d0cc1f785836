package testenv

import (
	"encoding/base64"
	"encoding/json"
	"testing"
)

// InfoUpdate is a PAS Claim Update of original (a PAS request Bundle whose
// first entry is the Claim) that answers a request for information: the
// same items, the prior Claim included (PAS spec-65), and one new
// supportingInfo pointing to a text DocumentReference (LOINC 11506-3
// Progress note) holding text. bundleID makes it a submission of its own.
func InfoUpdate(t testing.TB, original []byte, bundleID, text string) []byte {
	t.Helper()
	var b map[string]any
	if err := json.Unmarshal(original, &b); err != nil {
		t.Fatal(err)
	}
	b["identifier"].(map[string]any)["value"] = bundleID
	entries := b["entry"].([]any)
	raw, _ := json.Marshal(entries[0])
	var prior map[string]any
	_ = json.Unmarshal(raw, &prior)
	upd := entries[0].(map[string]any)
	upd["fullUrl"] = "http://davinci-pas.org/fhir/Claim/InfoUpdate-" + bundleID
	c := upd["resource"].(map[string]any)
	c["id"] = "InfoUpdate-" + bundleID
	c["meta"] = map[string]any{"profile": []any{"http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claim-update"}}
	c["related"] = []any{map[string]any{
		"claim": map[string]any{"reference": prior["fullUrl"]},
		"relationship": map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship", "code": "prior"}}},
	}}
	infos, _ := c["supportingInfo"].([]any)
	next := 1.0
	var docInfo any
	for _, si := range infos {
		m := si.(map[string]any)
		if n := m["sequence"].(float64); n >= next {
			next = n + 1
		}
		if ext, ok := m["extension"].([]any); ok && docInfo == nil && len(ext) > 0 {
			docInfo = ext[0] // the documentInformation extension PAS requires
		}
	}
	si := map[string]any{
		"sequence": next,
		"category": map[string]any{"coding": []any{map[string]any{
			"system": "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes", "code": "additionalInformation"}}},
		"valueReference": map[string]any{"reference": "DocumentReference/info-" + bundleID},
	}
	if docInfo != nil {
		si["extension"] = []any{docInfo}
	}
	c["supportingInfo"] = append(infos, si)
	doc := map[string]any{
		"fullUrl": "http://davinci-pas.org/fhir/DocumentReference/info-" + bundleID,
		"resource": map[string]any{
			"resourceType": "DocumentReference", "id": "info-" + bundleID, "status": "current",
			"type":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}}},
			"subject": map[string]any{"reference": "Patient/SubscriberExample"},
			"category": []any{map[string]any{"coding": []any{map[string]any{
				"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category", "code": "clinical-note"}}}},
			"content": []any{map[string]any{"attachment": map[string]any{
				"contentType": "text/plain", "title": "Progress note (additional information)", "data": base64.StdEncoding.EncodeToString([]byte(text))}}},
		},
	}
	b["entry"] = append(append([]any{upd, prior}, entries[1:]...), doc)
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
