package hooks

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

// The six CRD hooks. Primary hooks must carry coverage information for every
// order (CRD hook-16); secondary hooks may, and never ask for documentation
// (hook-19).
const (
	OrderSign          = "order-sign"
	OrderSelect        = "order-select"
	OrderDispatch      = "order-dispatch"
	AppointmentBook    = "appointment-book"
	EncounterStart     = "encounter-start"
	EncounterDischarge = "encounter-discharge"
)

// Hooks lists the hooks Priora serves, in discovery order.
var Hooks = []string{OrderSign, OrderSelect, OrderDispatch, AppointmentBook, EncounterStart, EncounterDischarge}

func primary(hook string) bool {
	return hook == OrderSign || hook == OrderDispatch || hook == AppointmentBook
}

// ServiceID is the CDS service id of a hook: the endpoint is
// /cds-services/{ServiceID(hook)}.
func ServiceID(hook string) string { return hook + "-crd" }

// hookOf returns the hook a service id answers, or "".
func hookOf(serviceID string) string {
	for _, h := range Hooks {
		if ServiceID(h) == serviceID {
			return h
		}
	}
	return ""
}

// standardPrefetch holds CRD 2.2's standard prefetch templates per hook,
// copied verbatim from the IG's CRDServices.json (found-29).
//
//go:embed standard-prefetch.json
var standardPrefetchJSON []byte

// Card types (CRD Response Types, codes of the cdshooks-card-type code
// system). Each type Priora emits is also a boolean configuration option
// (CRD dev-5), so a client can switch it off.
const (
	typeCoverageInfo      = "coverage-info"
	typeUnsolicitedDeterm = "unsolicited-determ"
	typeGuideline         = "guideline"
	typeAlternatives      = "therapy-alternatives-opt"
	typeReminder          = "clinical-reminder"
	typeInsurance         = "insurance"
	optMaxCards           = "max-cards"
)

const (
	cardTypeSystem   = "http://terminology.hl7.org/CodeSystem/cdshooks-card-type"
	crdTempSystem    = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
	defaultMaxCards  = 10
	crdVersion22     = "2.2"
	crdVersion20     = "2.0"
	coverageInfoURL  = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
	billingOptionURL = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-billing-options"
)

var cardTypeDisplay = map[string]string{
	typeCoverageInfo: "Coverage Information",
	typeGuideline:    "Guideline",
	typeAlternatives: "Optional Therapy Alternatives",
	typeReminder:     "Clinical Reminder",
}

// ConfigOption is a davinci-crd.configuration-options entry.
type ConfigOption struct {
	Code        string `json:"code"`
	Type        string `json:"type"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Default     any    `json:"default"`
}

var allOptions = map[string]ConfigOption{
	typeCoverageInfo: {typeCoverageInfo, "boolean", "Coverage Information",
		"Whether the order or appointment is covered, needs prior authorization or documentation, and links to the payer's forms (DTR)", true},
	typeUnsolicitedDeterm: {typeUnsolicitedDeterm, "boolean", "Unsolicited Determinations",
		"Whether the payer may waive prior authorization (pa-needed satisfied); send false for what-if calls", true},
	typeGuideline: {typeGuideline, "boolean", "Guidelines",
		"Payer instructions and links to the coverage policy behind a requirement", true},
	typeAlternatives: {typeAlternatives, "boolean", "Optional Therapy Alternatives",
		"Covered or lower-cost alternatives to the ordered service", true},
	typeReminder: {typeReminder, "boolean", "Additional Orders",
		"Companion or prerequisite orders that usually go with the ordered service", true},
	typeInsurance: {typeInsurance, "boolean", "Insurance Updates",
		"Corrections the payer proposes to the patient's coverage record", true},
	optMaxCards: {optMaxCards, "integer", "Maximum cards",
		"The most cards to return; the most important come first", defaultMaxCards},
}

// optionsFor lists the configuration options of a hook's service: one per
// card type the hook can produce, plus max-cards.
func optionsFor(hook string) []string {
	switch hook {
	case OrderSign, OrderSelect:
		return []string{typeCoverageInfo, typeUnsolicitedDeterm, typeGuideline, typeAlternatives, typeReminder, optMaxCards}
	case OrderDispatch, AppointmentBook:
		return []string{typeCoverageInfo, typeUnsolicitedDeterm, typeGuideline, typeInsurance, optMaxCards}
	case EncounterStart:
		return []string{typeCoverageInfo, typeInsurance, optMaxCards}
	}
	return []string{typeCoverageInfo, optMaxCards}
}

var hookTitles = map[string][2]string{
	OrderSign:          {"Coverage requirements at order signing", "Coverage, prior-authorization and documentation requirements for the orders being signed, with payer guidance and alternatives"},
	OrderSelect:        {"Coverage guidance at order selection", "Early coverage guidance for the orders being selected: alternatives, companion orders and whether prior authorization will be needed"},
	OrderDispatch:      {"Coverage requirements at order dispatch", "Coverage and prior-authorization requirements for orders routed to a performer"},
	AppointmentBook:    {"Coverage requirements at appointment booking", "Coverage and prior-authorization requirements for the appointments being booked"},
	EncounterStart:     {"Coverage check at encounter start", "Warns when the patient's coverage is not active or cannot be found"},
	EncounterDischarge: {"Coverage check at encounter discharge", "Warns when the patient's coverage is not active or cannot be found"},
}

type discoveryService struct {
	Hook        string            `json:"hook"`
	Title       string            `json:"title"`
	Description string            `json:"description"`
	ID          string            `json:"id"`
	Prefetch    map[string]string `json:"prefetch"`
	Extension   struct {
		Versions []string       `json:"davinci-crd.version"`
		Options  []ConfigOption `json:"davinci-crd.configuration-options"`
	} `json:"extension"`
}

// buildDiscovery renders GET /cds-services once.
func buildDiscovery() ([]byte, error) {
	var prefetch map[string]map[string]string
	if err := unmarshal(standardPrefetchJSON, &prefetch); err != nil {
		return nil, fmt.Errorf("hooks: standard prefetch: %w", err)
	}
	var doc struct {
		Services []discoveryService `json:"services"`
	}
	for _, h := range Hooks {
		s := discoveryService{Hook: h, ID: ServiceID(h), Title: hookTitles[h][0], Description: hookTitles[h][1], Prefetch: prefetch[h]}
		s.Extension.Versions = []string{crdVersion20, crdVersion22}
		for _, code := range optionsFor(h) {
			s.Extension.Options = append(s.Extension.Options, allOptions[code])
		}
		doc.Services = append(doc.Services, s)
	}
	return json.Marshal(doc)
}

// settings is a call's effective davinci-crd.configuration.
type settings struct {
	enabled  map[string]bool
	maxCards int
}

func (st settings) on(code string) bool {
	v, ok := st.enabled[code]
	return !ok || v
}

// parseSettings reads davinci-crd.configuration, keeping only the options
// the hook's service offers and values of the right type; everything else
// is ignored (CRD dev-17, dev-6).
func parseSettings(hook string, raw json.RawMessage) settings {
	st := settings{enabled: map[string]bool{}, maxCards: defaultMaxCards}
	if len(raw) == 0 {
		return st
	}
	var m map[string]json.RawMessage
	if unmarshal(raw, &m) != nil {
		return st
	}
	for _, code := range optionsFor(hook) {
		v, ok := m[code]
		if !ok {
			continue
		}
		if code == optMaxCards {
			var n int
			if unmarshal(v, &n) == nil && n >= 0 {
				st.maxCards = n
			}
			continue
		}
		var b bool
		if unmarshal(v, &b) == nil {
			st.enabled[code] = b
		}
	}
	return st
}
