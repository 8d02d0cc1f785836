package hooks

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/priora/priora/fhir"
)

// Request is a CDS Hooks call as CRD clients send it. Only what Priora reads
// is decoded; unknown members are ignored (CRD found-33, hook-23).
type Request struct {
	Hook              string                     `json:"hook"`
	HookInstance      string                     `json:"hookInstance"`
	FHIRServer        string                     `json:"fhirServer"`
	FHIRAuthorization *FHIRAuthorization         `json:"fhirAuthorization"`
	Context           *hookContext               `json:"context"`
	Prefetch          map[string]json.RawMessage `json:"prefetch"`
	Extension         map[string]json.RawMessage `json:"extension"`
}

// FHIRAuthorization is the access token the EHR lends for its FHIR API.
type FHIRAuthorization struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   *int   `json:"expires_in"`
	Scope       string `json:"scope"`
	Subject     string `json:"subject"`
	Patient     string `json:"patient"`
}

// hookContext is the union of the six hooks' context fields. order-dispatch
// comes in two shapes: hook 1.1 (dispatchedOrders, fulfillmentTasks) and hook
// 1.0 (order, task); kebab-case fulfillment-tasks also occurs in the wild.
type hookContext struct {
	UserID           string            `json:"userId"`
	PatientID        string            `json:"patientId"`
	EncounterID      string            `json:"encounterId"`
	Selections       []string          `json:"selections"`
	DraftOrders      *bundle           `json:"draftOrders"`
	Appointments     *bundle           `json:"appointments"`
	DispatchedOrders []string          `json:"dispatchedOrders"`
	Order            string            `json:"order"`
	Performer        json.RawMessage   `json:"performer"`
	FulfillmentTasks []json.RawMessage `json:"fulfillmentTasks"`
	KebabTasks       []json.RawMessage `json:"fulfillment-tasks"`
	Task             json.RawMessage   `json:"task"`
}

// bundle is a FHIR Bundle with its resources kept raw, so that an order can
// be sent back unchanged but for the extensions Priora adds.
type bundle struct {
	ResourceType string        `json:"resourceType"`
	Type         string        `json:"type"`
	Entry        []bundleEntry `json:"entry"`
}

type bundleEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
}

// resourceHead is the first look at any resource: its type and id.
type resourceHead struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
}

// order is what coverage rules read of a request resource (ServiceRequest,
// DeviceRequest, MedicationRequest, NutritionOrder, CommunicationRequest,
// VisionPrescription) or an Appointment.
type order struct {
	ResourceType string           `json:"resourceType"`
	ID           string           `json:"id"`
	Status       string           `json:"status"`
	Extension    []fhir.Extension `json:"extension"`

	Code                      *codeWithExt           `json:"code"`                // ServiceRequest
	CodeCodeableConcept       *codeWithExt           `json:"codeCodeableConcept"` // DeviceRequest
	CodeReference             *fhir.Reference        `json:"codeReference"`       // DeviceRequest → Device
	MedicationCodeableConcept *codeWithExt           `json:"medicationCodeableConcept"`
	MedicationReference       *fhir.Reference        `json:"medicationReference"`
	ServiceType               []fhir.CodeableConcept `json:"serviceType"` // Appointment
	Category                  []fhir.CodeableConcept `json:"category"`    // CommunicationRequest
	ReasonCode                []fhir.CodeableConcept `json:"reasonCode"`  // diagnoses
	BasedOn                   []fhir.Reference       `json:"basedOn"`     // Appointment → ServiceRequest
	Requester                 *fhir.Reference        `json:"requester"`   // ordering provider
	Orderer                   *fhir.Reference        `json:"orderer"`     // NutritionOrder
	Prescriber                *fhir.Reference        `json:"prescriber"`  // VisionPrescription
	Insurance                 refs                   `json:"insurance"`   // the order's Coverage
	QuantityQuantity          *fhir.Quantity         `json:"quantityQuantity"`
	OccurrencePeriod          *fhir.Period           `json:"occurrencePeriod"` // ServiceRequest, DeviceRequest
	OccurrenceDateTime        string                 `json:"occurrenceDateTime"`
	DispenseRequest           *struct {
		Quantity *fhir.Quantity `json:"quantity"`
	} `json:"dispenseRequest"`
	OralDiet *struct {
		Type []fhir.CodeableConcept `json:"type"`
	} `json:"oralDiet"`
	EnteralFormula *struct {
		BaseFormulaType *fhir.CodeableConcept `json:"baseFormulaType"`
	} `json:"enteralFormula"`
	Supplement []struct {
		Type *fhir.CodeableConcept `json:"type"`
	} `json:"supplement"`
	Payload []struct {
		ContentString          string                `json:"contentString"`
		ContentCodeableConcept *fhir.CodeableConcept `json:"contentCodeableConcept"`
	} `json:"payload"`
	LensSpecification []struct {
		Product *fhir.CodeableConcept `json:"product"`
	} `json:"lensSpecification"`
}

// refs is a list of References that also accepts a single Reference, as
// some EHRs (and the CRD reference implementation's tests) send.
type refs []fhir.Reference

func (r *refs) UnmarshalJSON(b []byte) error {
	var one fhir.Reference
	if err := unmarshal(b, &one); err == nil {
		*r = refs{one}
		return nil
	}
	var many []fhir.Reference
	if err := unmarshal(b, &many); err != nil {
		return err
	}
	*r = many
	return nil
}

// codeWithExt is a CodeableConcept that may carry CRD's billing-options
// extension (the EHR's candidate billing codes).
type codeWithExt struct {
	Extension []fhir.Extension `json:"extension"`
	Coding    []fhir.Coding    `json:"coding"`
	Text      string           `json:"text"`
}

// coverageRes is what Priora reads of a Coverage.
type coverageRes struct {
	ResourceType string                `json:"resourceType"`
	ID           string                `json:"id"`
	Status       string                `json:"status"`
	Identifier   []fhir.Identifier     `json:"identifier"`
	SubscriberID string                `json:"subscriberId"`
	Relationship *fhir.CodeableConcept `json:"relationship"`
	Beneficiary  *fhir.Reference       `json:"beneficiary"`
	Period       *fhir.Period          `json:"period"`
	Payor        []fhir.Reference      `json:"payor"`
	Class        []fhir.CoverageClass  `json:"class"`
	Contained    []json.RawMessage     `json:"contained"`
	Extension    []fhir.Extension      `json:"extension"`
	Type         *fhir.CodeableConcept `json:"type"`
}

// Response is a CDS Hooks response.
type Response struct {
	Cards         []Card   `json:"cards"`
	SystemActions []Action `json:"systemActions,omitempty"`
	// alwaysActions makes an empty systemActions appear as [] (CRD 2.0.1
	// mode: Inferno's released suite requires the member on primary hooks).
	alwaysActions bool
}

// MarshalJSON writes cards (always, possibly empty) and systemActions (when
// present, or empty in 2.0.1 mode on primary hooks). System action
// resources are copied as they are (they are valid JSON by construction),
// not re-encoded.
func (r *Response) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	if err := r.writeJSON(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// respBufs are buffers for hook responses: a response is written into
// one, sent, and the buffer reused (Answer.Release).
var respBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooled is the largest buffer kept for reuse (a rare huge answer is
// left to the garbage collector).
const maxPooled = 256 << 10

// writeJSON writes the response JSON to b, from its pieces: the system
// actions' resources are already JSON and are copied, not re-encoded.
func (r *Response) writeJSON(b *bytes.Buffer) error {
	b.Grow(1024 + 2*len(r.SystemActions)*1024)
	b.WriteString(`{"cards":`)
	if len(r.Cards) == 0 {
		b.WriteString("[]")
	} else {
		enc := json.NewEncoder(b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(r.Cards); err != nil {
			return err
		}
		b.Truncate(b.Len() - 1) // Encode's newline
	}
	if len(r.SystemActions) > 0 || r.alwaysActions {
		b.WriteString(`,"systemActions":[`)
		for i, a := range r.SystemActions {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"type":`)
			writeString(b, a.Type)
			b.WriteString(`,"description":`)
			writeString(b, a.Description)
			if len(a.Resource) > 0 {
				b.WriteString(`,"resource":`)
				b.Write(a.Resource)
			}
			if a.ResourceID != "" {
				b.WriteString(`,"resourceId":`)
				writeString(b, a.ResourceID)
			}
			b.WriteByte('}')
		}
		b.WriteByte(']')
	}
	b.WriteByte('}')
	return nil
}

func writeString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s)
	b.Write(q)
}

// Card is a CDS Hooks card.
type Card struct {
	UUID              string         `json:"uuid"`
	Summary           string         `json:"summary"`
	Detail            string         `json:"detail,omitempty"`
	Indicator         string         `json:"indicator"`
	Source            Source         `json:"source"`
	Suggestions       []Suggestion   `json:"suggestions,omitempty"`
	SelectionBehavior string         `json:"selectionBehavior,omitempty"`
	Links             []Link         `json:"links,omitempty"`
	Extension         *CardExtension `json:"extension,omitempty"`
}

// CardExtension carries CRD's card-level extensions.
type CardExtension struct {
	// AssociatedResource names the orders a card is about (CRD dev-25).
	AssociatedResource []fhir.Reference `json:"davinci-crd.associated-resource,omitempty"`
}

// Source is a card's source.
type Source struct {
	Label string       `json:"label"`
	URL   string       `json:"url,omitempty"`
	Topic *fhir.Coding `json:"topic,omitempty"`
}

// Suggestion is a set of actions the user may accept.
type Suggestion struct {
	Label         string   `json:"label"`
	UUID          string   `json:"uuid"`
	IsRecommended bool     `json:"isRecommended,omitempty"`
	Actions       []Action `json:"actions"`
}

// Action is a create, update or delete of an EHR resource.
type Action struct {
	Type        string          `json:"type"`
	Description string          `json:"description"`
	Resource    json.RawMessage `json:"resource,omitempty"`
	ResourceID  string          `json:"resourceId,omitempty"`
}

// Link is a card link: absolute (a web page) or smart (an app launch).
type Link struct {
	Label      string `json:"label"`
	URL        string `json:"url"`
	Type       string `json:"type"`
	AppContext string `json:"appContext,omitempty"`
}

// Feedback is the body of POST /cds-services/{id}/feedback.
type Feedback struct {
	Feedback []FeedbackItem `json:"feedback"`
}

// FeedbackItem is the EHR's report of what a user did with one card.
type FeedbackItem struct {
	Card                string `json:"card"`
	Outcome             string `json:"outcome"`
	AcceptedSuggestions []struct {
		ID string `json:"id"`
	} `json:"acceptedSuggestions"`
	OverrideReason *struct {
		Reason      *fhir.Coding `json:"reason"`
		UserComment string       `json:"userComment"`
	} `json:"overrideReason"`
	OutcomeTimestamp string `json:"outcomeTimestamp"`
}
