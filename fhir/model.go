package fhir

import "encoding/json"

// The types below are a light, hand-written view of the R4 elements Priora
// reads and writes. Inbound JSON is first checked by Parser against the full
// R4 model; these structs then carry only what business logic needs, and
// marshal back out with encoding/json (no reflection over generated protos on
// the hot path).

type Coding struct {
	System  string `json:"system,omitempty"`
	Version string `json:"version,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// Code returns the first code of the concept in system ("" = any system).
func (c *CodeableConcept) Code(system string) (Coding, bool) {
	if c == nil {
		return Coding{}, false
	}
	for _, cd := range c.Coding {
		if system == "" || cd.System == system {
			return cd, true
		}
	}
	return Coding{}, false
}

type Identifier struct {
	Extension []Extension      `json:"extension,omitempty"`
	Use       string           `json:"use,omitempty"`
	Type      *CodeableConcept `json:"type,omitempty"`
	System    string           `json:"system,omitempty"`
	Value     string           `json:"value,omitempty"`
	Assigner  *Reference       `json:"assigner,omitempty"`
}

// Key is the identifier as "system|value".
func (id Identifier) Key() string { return id.System + "|" + id.Value }

type Reference struct {
	Reference  string      `json:"reference,omitempty"`
	Type       string      `json:"type,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
	Extension  []Extension `json:"extension,omitempty"`
}

type Period struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

type Quantity struct {
	Value  *json.Number `json:"value,omitempty"`
	Unit   string       `json:"unit,omitempty"`
	System string       `json:"system,omitempty"`
	Code   string       `json:"code,omitempty"`
}

// Float returns the quantity's value, or 0 when absent.
func (q *Quantity) Float() float64 {
	if q == nil || q.Value == nil {
		return 0
	}
	f, _ := q.Value.Float64()
	return f
}

// Extension covers the value types PAS and CRD use.
type Extension struct {
	URL                  string           `json:"url"`
	Extension            []Extension      `json:"extension,omitempty"`
	ValueString          *string          `json:"valueString,omitempty"`
	ValueCode            *string          `json:"valueCode,omitempty"`
	ValueBoolean         *bool            `json:"valueBoolean,omitempty"`
	ValueDate            *string          `json:"valueDate,omitempty"`
	ValueDateTime        *string          `json:"valueDateTime,omitempty"`
	ValueURL             *string          `json:"valueUrl,omitempty"`
	ValueURI             *string          `json:"valueUri,omitempty"`
	ValueCanonical       *string          `json:"valueCanonical,omitempty"`
	ValuePositiveInt     *int             `json:"valuePositiveInt,omitempty"`
	ValueInteger         *int             `json:"valueInteger,omitempty"`
	ValueCoding          *Coding          `json:"valueCoding,omitempty"`
	ValueCodeableConcept *CodeableConcept `json:"valueCodeableConcept,omitempty"`
	ValueReference       *Reference       `json:"valueReference,omitempty"`
	ValueIdentifier      *Identifier      `json:"valueIdentifier,omitempty"`
	ValuePeriod          *Period          `json:"valuePeriod,omitempty"`
	ValueQuantity        *Quantity        `json:"valueQuantity,omitempty"`
	ValueDecimal         *json.Number     `json:"valueDecimal,omitempty"`
	ValueUnsignedInt     *int             `json:"valueUnsignedInt,omitempty"`
	ValueInstant         *string          `json:"valueInstant,omitempty"`
	ValueTime            *string          `json:"valueTime,omitempty"`
	ValueID              *string          `json:"valueId,omitempty"`
	ValueMarkdown        *string          `json:"valueMarkdown,omitempty"`
	ValueMoney           json.RawMessage  `json:"valueMoney,omitempty"`
	ValueAttachment      json.RawMessage  `json:"valueAttachment,omitempty"`
	ValueRange           json.RawMessage  `json:"valueRange,omitempty"`
	ValueRatio           json.RawMessage  `json:"valueRatio,omitempty"`
	ValueTiming          json.RawMessage  `json:"valueTiming,omitempty"`
	ValueAddress         json.RawMessage  `json:"valueAddress,omitempty"`
	ValueHumanName       json.RawMessage  `json:"valueHumanName,omitempty"`
	ValueContactPoint    json.RawMessage  `json:"valueContactPoint,omitempty"`
	ValueDuration        *Quantity        `json:"valueDuration,omitempty"`
	ValueAge             *Quantity        `json:"valueAge,omitempty"`
}

// FindExtension returns the first extension with url.
func FindExtension(exts []Extension, url string) (Extension, bool) {
	for _, e := range exts {
		if e.URL == url {
			return e, true
		}
	}
	return Extension{}, false
}

// StringValue returns a string-like value of the extension, whatever its type.
func (e Extension) StringValue() string {
	for _, p := range []*string{e.ValueString, e.ValueCode, e.ValueDate, e.ValueDateTime, e.ValueURL, e.ValueURI, e.ValueCanonical} {
		if p != nil {
			return *p
		}
	}
	if e.ValueIdentifier != nil {
		return e.ValueIdentifier.Value
	}
	return ""
}

// Ptr returns a pointer to v, for optional fields.
func Ptr[T any](v T) *T { return &v }

type Meta struct {
	Profile     []string `json:"profile,omitempty"`
	LastUpdated string   `json:"lastUpdated,omitempty"`
	VersionID   string   `json:"versionId,omitempty"`
	Security    []Coding `json:"security,omitempty"`
}

// SystemActReason is HL7 v3 ActReason, whose HTEST code marks test data.
const SystemActReason = "http://terminology.hl7.org/CodeSystem/v3-ActReason"

// IsTestData reports whether meta carries the security label HTEST (test
// health data): the resource is a test, not a real patient's request.
func (m *Meta) IsTestData() bool {
	if m == nil {
		return false
	}
	for _, c := range m.Security {
		if c.System == SystemActReason && c.Code == "HTEST" {
			return true
		}
	}
	return false
}

// Claim is the part of an R4 Claim that PAS processing reads.
type Claim struct {
	ResourceType      string            `json:"resourceType"`
	ID                string            `json:"id,omitempty"`
	Meta              *Meta             `json:"meta,omitempty"`
	Extension         []Extension       `json:"extension,omitempty"`
	ModifierExtension []Extension       `json:"modifierExtension,omitempty"`
	Identifier        []Identifier      `json:"identifier,omitempty"`
	Status            string            `json:"status,omitempty"`
	Type              *CodeableConcept  `json:"type,omitempty"`
	Use               string            `json:"use,omitempty"`
	Patient           *Reference        `json:"patient,omitempty"`
	Created           string            `json:"created,omitempty"`
	Insurer           *Reference        `json:"insurer,omitempty"`
	Provider          *Reference        `json:"provider,omitempty"`
	Priority          *CodeableConcept  `json:"priority,omitempty"`
	Related           []ClaimRelated    `json:"related,omitempty"`
	CareTeam          []ClaimCareTeam   `json:"careTeam,omitempty"`
	SupportingInfo    []ClaimSupporting `json:"supportingInfo,omitempty"`
	Diagnosis         []ClaimDiagnosis  `json:"diagnosis,omitempty"`
	Insurance         []ClaimInsurance  `json:"insurance,omitempty"`
	Item              []ClaimItem       `json:"item,omitempty"`
	Total             json.RawMessage   `json:"total,omitempty"`
	BillablePeriod    *Period           `json:"billablePeriod,omitempty"`
	Referral          *Reference        `json:"referral,omitempty"`
	Facility          *Reference        `json:"facility,omitempty"`
	Enterer           *Reference        `json:"enterer,omitempty"`
	Accident          json.RawMessage   `json:"accident,omitempty"`
	Procedure         json.RawMessage   `json:"procedure,omitempty"`
	Contained         []json.RawMessage `json:"contained,omitempty"`
}

type ClaimRelated struct {
	Claim        *Reference       `json:"claim,omitempty"`
	Relationship *CodeableConcept `json:"relationship,omitempty"`
}

type ClaimCareTeam struct {
	Extension     []Extension      `json:"extension,omitempty"`
	Sequence      int              `json:"sequence"`
	Provider      *Reference       `json:"provider,omitempty"`
	Role          *CodeableConcept `json:"role,omitempty"`
	Qualification *CodeableConcept `json:"qualification,omitempty"`
}

type ClaimSupporting struct {
	Extension         []Extension      `json:"extension,omitempty"`
	ModifierExtension []Extension      `json:"modifierExtension,omitempty"`
	Sequence          int              `json:"sequence"`
	Category          *CodeableConcept `json:"category,omitempty"`
	Code              *CodeableConcept `json:"code,omitempty"`
	ValueReference    *Reference       `json:"valueReference,omitempty"`
	ValueString       *string          `json:"valueString,omitempty"`
	TimingDate        *string          `json:"timingDate,omitempty"`
	TimingPeriod      *Period          `json:"timingPeriod,omitempty"`
}

type ClaimDiagnosis struct {
	Extension                []Extension       `json:"extension,omitempty"`
	Sequence                 int               `json:"sequence"`
	DiagnosisCodeableConcept *CodeableConcept  `json:"diagnosisCodeableConcept,omitempty"`
	DiagnosisReference       *Reference        `json:"diagnosisReference,omitempty"`
	Type                     []CodeableConcept `json:"type,omitempty"`
}

type ClaimInsurance struct {
	Sequence int        `json:"sequence"`
	Focal    bool       `json:"focal"`
	Coverage *Reference `json:"coverage,omitempty"`
}

type ClaimItem struct {
	Extension               []Extension       `json:"extension,omitempty"`
	ModifierExtension       []Extension       `json:"modifierExtension,omitempty"`
	Sequence                int               `json:"sequence"`
	CareTeamSequence        []int             `json:"careTeamSequence,omitempty"`
	DiagnosisSequence       []int             `json:"diagnosisSequence,omitempty"`
	InformationSequence     []int             `json:"informationSequence,omitempty"`
	Revenue                 *CodeableConcept  `json:"revenue,omitempty"`
	Category                *CodeableConcept  `json:"category,omitempty"`
	ProductOrService        *CodeableConcept  `json:"productOrService,omitempty"`
	Modifier                []CodeableConcept `json:"modifier,omitempty"`
	ServicedDate            *string           `json:"servicedDate,omitempty"`
	ServicedPeriod          *Period           `json:"servicedPeriod,omitempty"`
	LocationCodeableConcept *CodeableConcept  `json:"locationCodeableConcept,omitempty"`
	LocationReference       *Reference        `json:"locationReference,omitempty"`
	LocationAddress         json.RawMessage   `json:"locationAddress,omitempty"`
	Quantity                *Quantity         `json:"quantity,omitempty"`
	UnitPrice               json.RawMessage   `json:"unitPrice,omitempty"`
	Net                     json.RawMessage   `json:"net,omitempty"`
}

// Coverage is the part of an R4 Coverage that coverage rules read.
type Coverage struct {
	ResourceType string            `json:"resourceType"`
	ID           string            `json:"id,omitempty"`
	Identifier   []Identifier      `json:"identifier,omitempty"`
	Status       string            `json:"status,omitempty"`
	Type         *CodeableConcept  `json:"type,omitempty"`
	SubscriberID string            `json:"subscriberId,omitempty"`
	Subscriber   *Reference        `json:"subscriber,omitempty"`
	Beneficiary  *Reference        `json:"beneficiary,omitempty"`
	Period       *Period           `json:"period,omitempty"`
	Payor        []Reference       `json:"payor,omitempty"`
	Class        []CoverageClass   `json:"class,omitempty"`
	Extension    []Extension       `json:"extension,omitempty"`
	Relationship *CodeableConcept  `json:"relationship,omitempty"`
	Contained    []json.RawMessage `json:"contained,omitempty"`
}

type CoverageClass struct {
	Type  *CodeableConcept `json:"type,omitempty"`
	Value string           `json:"value,omitempty"`
	Name  string           `json:"name,omitempty"`
}

// Party is what Priora reads of a Patient, Organization, Practitioner or
// PractitionerRole: its identifiers and a display name.
type Party struct {
	ResourceType string          `json:"resourceType"`
	ID           string          `json:"id,omitempty"`
	Identifier   []Identifier    `json:"identifier,omitempty"`
	Name         json.RawMessage `json:"name,omitempty"`
	Practitioner *Reference      `json:"practitioner,omitempty"`
	Organization *Reference      `json:"organization,omitempty"`
	BirthDate    string          `json:"birthDate,omitempty"`
}

// IdentifierValue returns the first identifier value in system.
func (p *Party) IdentifierValue(system string) string {
	if p == nil {
		return ""
	}
	for _, id := range p.Identifier {
		if id.System == system {
			return id.Value
		}
	}
	return ""
}
