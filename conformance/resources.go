// Package conformance holds what Priora declares about itself — the
// CapabilityStatement, the PAS OperationDefinitions and SubscriptionTopic —
// and the default inputs of the conformance suite (package
// conformance/suite, command "priora conform"), which checks any PAS or
// CRD server over HTTP and imports nothing of Priora's server side.
package conformance

import (
	"embed"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

//go:embed resources/*.json
var resources embed.FS

// OperationDefinition returns a PAS OperationDefinition by id
// (Claim-submit or Claim-inquiry): PAS 2.2.1's, corrected for opd-3
// (correctOperationDefinition).
func OperationDefinition(id string) ([]byte, bool) {
	b, err := resources.ReadFile("resources/OperationDefinition-" + id + ".json")
	if err != nil {
		return nil, false
	}
	out, err := correctOperationDefinition(b)
	return out, err == nil
}

// correctOperationDefinition fixes what makes PAS 2.2.1's
// OperationDefinitions fail R4's opd-3 ("A targetProfile can only be
// specified for parameters of type Reference or Canonical"): their Bundle
// parameters name the PAS Bundle profiles in targetProfile. The profile
// moves into the parameter's documentation, and the description says what
// was corrected; nothing else changes.
func correctOperationDefinition(b []byte) ([]byte, error) {
	var od map[string]json.RawMessage
	if err := json.Unmarshal(b, &od); err != nil {
		return nil, err
	}
	var params []map[string]any
	if err := json.Unmarshal(od["parameter"], &params); err != nil {
		return nil, err
	}
	var moved []string
	for _, p := range params {
		typ, _ := p["type"].(string)
		tps, _ := p["targetProfile"].([]any)
		if len(tps) == 0 || typ == "Reference" || typ == "canonical" {
			continue
		}
		var names []string
		for _, tp := range tps {
			if s, ok := tp.(string); ok {
				names = append(names, s)
			}
		}
		delete(p, "targetProfile")
		doc, _ := p["documentation"].(string)
		p["documentation"] = strings.TrimSpace(doc + " Conforms to " + strings.Join(names, ", ") + ".")
		moved = append(moved, fmt.Sprintf("%v (%s)", p["name"], strings.Join(names, ", ")))
	}
	if len(moved) == 0 {
		return b, nil
	}
	var desc string
	_ = json.Unmarshal(od["description"], &desc) // absent is ""
	desc += "\n\nCorrected by Priora: R4 allows targetProfile only on Reference and canonical parameters (opd-3), so the Bundle profiles of " +
		strings.Join(moved, "; ") + " are stated in each parameter's documentation instead of targetProfile."
	var err error
	if od["description"], err = json.Marshal(desc); err != nil {
		return nil, err
	}
	if od["parameter"], err = json.Marshal(params); err != nil {
		return nil, err
	}
	return json.Marshal(od)
}

// Server describes the server a CapabilityStatement is written for.
type Server struct {
	BaseURL   string
	Version   string
	Started   time.Time
	SMART     bool // SMART Backend Services token endpoint available
	TokenURL  string
	CDSHooks  bool
	Published time.Time
	// Tolerances are the departures from the profiles that validation
	// accepts as warnings, one sentence each; the documentation lists
	// them, or says that there are none (PRIORA_STRICT=true).
	Tolerances []string
}

// CapabilityStatement renders Priora's CapabilityStatement (kind instance).
func CapabilityStatement(s Server) []byte {
	type op struct {
		Name       string `json:"name"`
		Definition string `json:"definition"`
	}
	type ext struct {
		URL            string `json:"url"`
		ValueCanonical string `json:"valueCanonical,omitempty"`
	}
	type resource struct {
		Type             string              `json:"type"`
		SupportedProfile []string            `json:"supportedProfile,omitempty"`
		Extension        []ext               `json:"extension,omitempty"`
		Interaction      []map[string]string `json:"interaction,omitempty"`
		SearchParam      []map[string]string `json:"searchParam,omitempty"`
		Operation        []op                `json:"operation,omitempty"`
	}
	pas := "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"id":           "priora",
		"url":          s.BaseURL + "/fhir/metadata",
		"name":         "PrioraCapabilityStatement",
		"title":        "Priora prior-authorization server",
		"status":       "active",
		"date":         s.Started.UTC().Format(time.RFC3339),
		"publisher":    "Priora",
		"kind":         "instance",
		"instantiates": []string{
			"http://hl7.org/fhir/us/davinci-pas/CapabilityStatement/IntermediaryCapabilities",
			"http://hl7.org/fhir/uv/subscriptions-backport/CapabilityStatement/backport-subscription-server-r4",
		},
		"software":       map[string]string{"name": "Priora", "version": s.Version},
		"implementation": map[string]string{"description": "Priora PAS/CRD server", "url": s.BaseURL + "/fhir"},
		"fhirVersion":    "4.0.1",
		"format":         []string{"application/fhir+json", "json"},
		// Each guide with the version served (canonical|version): PAS
		// 2.2.1; CRD 2.2.1 and its 2.0.1 mode; the Subscriptions R5
		// Backport 1.1.0 that PAS 2.2.1 depends on.
		"implementationGuide": []string{
			"http://hl7.org/fhir/us/davinci-pas/ImplementationGuide/hl7.fhir.us.davinci-pas|2.2.1",
			"http://hl7.org/fhir/us/davinci-crd/ImplementationGuide/hl7.fhir.us.davinci-crd|2.2.1",
			"http://hl7.org/fhir/us/davinci-crd/ImplementationGuide/hl7.fhir.us.davinci-crd|2.0.1",
			"http://hl7.org/fhir/uv/subscriptions-backport/ImplementationGuide/hl7.fhir.uv.subscriptions-backport|1.1.0",
		},
		"rest": []map[string]any{{
			"mode":          "server",
			"documentation": "Da Vinci PAS STU 2.2.1 payer intermediary: Claim/$submit and Claim/$inquire, with topic-based Subscriptions (R4 backport) for pended results. " + tolerancesText(s.Tolerances),
			"resource": []resource{
				{
					Type:             "Claim",
					SupportedProfile: []string{pas + "profile-claim", pas + "profile-claim-update", pas + "profile-claim-inquiry"},
					Operation: []op{
						{Name: "submit", Definition: "http://hl7.org/fhir/us/davinci-pas/OperationDefinition/Claim-submit"},
						{Name: "inquire", Definition: "http://hl7.org/fhir/us/davinci-pas/OperationDefinition/Claim-inquiry"},
					},
				},
				{
					Type:             "ClaimResponse",
					SupportedProfile: []string{pas + "profile-claimresponse", pas + "profile-claiminquiryresponse"},
				},
				{
					Type:             "Bundle",
					SupportedProfile: []string{pas + "profile-pas-request-bundle", pas + "profile-pas-response-bundle", pas + "profile-pas-inquiry-request-bundle", pas + "profile-pas-inquiry-response-bundle"},
				},
				{
					Type:             "Subscription",
					SupportedProfile: []string{pas + "profile-subscription"},
					Extension: []ext{{
						URL:            "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical",
						ValueCanonical: "http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic",
					}},
					Interaction: []map[string]string{{"code": "create"}, {"code": "read"}, {"code": "update"}, {"code": "delete"}, {"code": "search-type"}},
					SearchParam: []map[string]string{{"name": "url", "type": "uri"}, {"name": "status", "type": "token"}},
					Operation:   []op{{Name: "status", Definition: "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status"}},
				},
			},
		}},
	}
	if s.SMART {
		rest := cs["rest"].([]map[string]any)
		rest[0]["security"] = map[string]any{
			"service": []map[string]any{{"coding": []map[string]string{{
				"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}}}},
			// No oauth-uris extension: its definition requires an
			// authorize endpoint, which Backend Services do not have;
			// SMART clients discover the token endpoint in
			// .well-known/smart-configuration.
			"description": "SMART Backend Services (client_credentials with private_key_jwt): token endpoint " + s.TokenURL +
				", discovery at " + s.BaseURL + "/fhir/.well-known/smart-configuration.",
		}
	}
	b, err := json.Marshal(cs)
	if err != nil {
		panic(fmt.Sprintf("conformance: marshal CapabilityStatement: %v", err)) // static shape; cannot fail
	}
	return b
}

// tolerancesText documents what request validation tolerates.
func tolerancesText(tol []string) string {
	if len(tol) == 0 {
		return "Request validation tolerates nothing: every profile rule is enforced (PRIORA_STRICT=true)."
	}
	var b strings.Builder
	b.WriteString("Request validation reports these departures from the profiles as warnings, not errors (PRIORA_STRICT=true makes them errors):")
	for _, t := range tol {
		b.WriteString(" - ")
		b.WriteString(t)
	}
	return b.String()
}
