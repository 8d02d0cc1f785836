package subscriptions

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

// Notification types (backport SubscriptionStatus.type).
const (
	typeHandshake   = "handshake"
	typeHeartbeat   = "heartbeat"
	typeEvent       = "event-notification"
	typeQueryStatus = "query-status"
)

type reference struct {
	Reference string `json:"reference"`
}

type parameter struct {
	Name                 string           `json:"name"`
	ValueString          string           `json:"valueString,omitempty"`
	ValueCode            string           `json:"valueCode,omitempty"`
	ValueCanonical       string           `json:"valueCanonical,omitempty"`
	ValueInstant         string           `json:"valueInstant,omitempty"`
	ValueReference       *reference       `json:"valueReference,omitempty"`
	ValueCodeableConcept *codeableConcept `json:"valueCodeableConcept,omitempty"`
	Part                 []parameter      `json:"part,omitempty"`
}

type codeableConcept struct {
	Text string `json:"text"`
}

type parameters struct {
	ResourceType string      `json:"resourceType"`
	ID           string      `json:"id"`
	Meta         *fhir.Meta  `json:"meta,omitempty"`
	Parameter    []parameter `json:"parameter"`
}

// event is one notification-event of a SubscriptionStatus.
type event struct {
	number int
	at     time.Time
	focus  string
}

// subscriptionURL is the absolute URL of a subscription.
func (s *Service) subscriptionURL(id string) string { return s.fhirBase + "/Subscription/" + id }

// status is a SubscriptionStatus (backport-subscription-status-r4): the
// subscription's state as a Parameters resource.
func (s *Service) status(sub *store.Subscription, typ, status string, events int, ev *event) parameters {
	p := parameters{
		ResourceType: "Parameters",
		ID:           uuid.NewString(),
		Meta:         &fhir.Meta{Profile: []string{profileStatus}},
		Parameter: []parameter{
			{Name: "subscription", ValueReference: &reference{s.subscriptionURL(sub.ID)}},
			{Name: "topic", ValueCanonical: Topic},
			{Name: "status", ValueCode: status},
			{Name: "type", ValueCode: typ},
			{Name: "events-since-subscription-start", ValueString: strconv.Itoa(events)},
		},
	}
	if ev != nil {
		p.Parameter = append(p.Parameter, parameter{Name: "notification-event", Part: []parameter{
			{Name: "event-number", ValueString: strconv.Itoa(ev.number)},
			{Name: "timestamp", ValueInstant: instant(ev.at)},
			{Name: "focus", ValueReference: &reference{ev.focus}},
		}})
	}
	return p
}

// notification is a backport R4 notification Bundle: a history Bundle whose
// first entry is the SubscriptionStatus, followed, for an event, by the
// full PAS Response Bundle the event's focus points at.
func (s *Service) notification(sub *store.Subscription, typ, status string, events int, ev *event, focus json.RawMessage) []byte {
	st := s.status(sub, typ, status, events, ev)
	b := fhir.Bundle{
		ResourceType: "Bundle",
		ID:           uuid.NewString(),
		Meta:         &fhir.Meta{Profile: []string{profileNote}},
		Type:         "history",
		Timestamp:    instant(s.cfg.Now()),
		Entry: []fhir.Entry{{
			FullURL:  "urn:uuid:" + st.ID,
			Resource: mustJSON(st),
			Request:  &fhir.EntryRequest{Method: "GET", URL: s.subscriptionURL(sub.ID) + "/$status"},
			Response: &fhir.EntryResponse{Status: "200"},
		}},
	}
	if ev != nil && focus != nil {
		b.Entry = append(b.Entry, fhir.Entry{
			FullURL:  ev.focus,
			Resource: focus,
			Request:  &fhir.EntryRequest{Method: "POST", URL: s.fhirBase + "/Bundle"},
			Response: &fhir.EntryResponse{Status: "201"},
		})
	}
	return mustJSON(b)
}

// focusURL is the fullUrl of a PAS Response Bundle inside a notification:
// urn:uuid:<its id> when the id is a UUID (Priora's always are), otherwise
// a UUID derived from the notification's ID, stable across retries.
func focusURL(responseJSON []byte, noteID string) string {
	var head struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(responseJSON, &head) // Priora wrote it; a failure just means no id
	if _, err := uuid.Parse(head.ID); err == nil && len(head.ID) == 36 {
		return "urn:uuid:" + head.ID
	}
	return "urn:uuid:" + uuid.NewSHA1(uuid.NameSpaceURL, []byte("priora:notification:"+noteID)).String()
}

// searchset is a searchset Bundle of resources with their fullUrls.
func (s *Service) searchset(self string, entries []fhir.Entry) []byte {
	n := len(entries)
	b := fhir.Bundle{
		ResourceType: "Bundle",
		ID:           uuid.NewString(),
		Meta:         &fhir.Meta{LastUpdated: instant(s.cfg.Now())},
		Type:         "searchset",
		Total:        &n,
		Link:         []fhir.BundleLink{{Relation: "self", URL: self}},
		Entry:        entries,
	}
	return mustJSON(b)
}

var searchMatch = json.RawMessage(`{"mode":"match"}`)
