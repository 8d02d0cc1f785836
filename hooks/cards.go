package hooks

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/priora/priora/coverage"
	"github.com/priora/priora/fhir"
)

// maxSummary is CDS Hooks' limit on Card.summary: fewer than 140 characters.
const maxSummary = 139

// cards builds the cards the rules call for, most important first, cut to
// the client's max-cards. Coverage information itself is never a card
// (CRD resp-25).
func (c *call) cards(ds []*decision) []Card {
	var cards []Card
	for _, d := range ds {
		if d.out.Rule == nil || d.t.o.ResourceType == "Encounter" {
			continue
		}
		crd := d.out.Rule.CRD
		name := orderName(d)
		if crd.Alternative != nil && c.st.on(typeAlternatives) && (c.hook == OrderSign || c.hook == OrderSelect) {
			if card, ok := c.alternateCard(d, *crd.Alternative, name); ok {
				cards = append(cards, card)
			}
		}
		if len(crd.Companions) > 0 && c.st.on(typeReminder) && (c.hook == OrderSign || c.hook == OrderSelect) {
			if card, ok := c.additionalOrdersCard(d, crd.Companions, name); ok {
				cards = append(cards, card)
			}
		}
		if len(d.ci.Questionnaire) > 0 && c.st.on(typeCoverageInfo) && primary(c.hook) {
			if launch := c.rules.Defaults.DTRLaunchURL; launch != "" {
				cards = append(cards, c.dtrCard(d, launch, name))
			} else {
				cards = append(cards, c.formCard(d, name))
			}
		}
		if unknown := d.out.Unknown(); len(unknown) > 0 && d.ci.PANeeded != "satisfied" && primary(c.hook) && c.st.on(typeGuideline) {
			cards = append(cards, c.criteriaCard(d, unknown, name))
		}
		if crd.Instructions != "" && c.st.on(typeGuideline) {
			cards = append(cards, c.card(d, typeGuideline, "info", name+": "+firstSentence(crd.Instructions),
				crd.Instructions+"\n\nThis applies to "+name+"."))
		}
		if crd.PolicyURL != "" && c.st.on(typeGuideline) {
			title := crd.PolicyTitle
			if title == "" {
				title = "Coverage policy"
			}
			card := c.card(d, typeGuideline, "info", title+" applies to "+name,
				"The payer's coverage policy for "+name+" explains the criteria behind this requirement.")
			card.Links = []Link{{Label: title, URL: crd.PolicyURL, Type: "absolute"}}
			cards = append(cards, card)
		}
	}
	if card, ok := c.updateCoverageCard(); ok {
		cards = append(cards, card)
	}
	if len(cards) > c.st.maxCards {
		cards = cards[:c.st.maxCards]
	}
	return cards
}

// criteriaCard names the policy criteria the order's data does not show,
// so the clinician documents them before the request is sent.
func (c *call) criteriaCard(d *decision, unknown []coverage.CriterionResult, name string) Card {
	var b strings.Builder
	fmt.Fprintf(&b, "Coverage policy %s decides %s on these criteria; please document them:\n", d.out.RuleID(), name)
	var codes []string
	for _, u := range unknown {
		fmt.Fprintf(&b, "\n- %s (%s)", u.Description, u.ID)
		for _, code := range u.RequestInfo {
			if !slices.Contains(codes, code) {
				codes = append(codes, code)
			}
		}
	}
	if len(codes) > 0 {
		fmt.Fprintf(&b, "\n\nDocuments that show them (LOINC): %s.", strings.Join(codes, ", "))
	}
	return c.card(d, typeGuideline, "info", fmt.Sprintf("%s: document %d coverage criteria", name, len(unknown)), b.String())
}

// card is a card about one decision's order.
func (c *call) card(d *decision, topic, indicator, summary, detail string) Card {
	card := Card{
		UUID:      uuid.NewString(),
		Summary:   truncate(summary, maxSummary),
		Detail:    detail,
		Indicator: indicator,
		Source:    Source{Label: c.payerName(), Topic: c.topic(topic)},
	}
	if d != nil {
		card.Extension = &CardExtension{AssociatedResource: []fhir.Reference{{Reference: d.t.ref}}}
	}
	return card
}

// topic is a card's source.topic; CRD 2.0.1 used its own temporary code
// system for the same codes.
func (c *call) topic(code string) *fhir.Coding {
	if c.version == crdVersion20 {
		return &fhir.Coding{System: crdTempSystem, Code: code, Display: cardTypeDisplay[code]}
	}
	return &fhir.Coding{System: cardTypeSystem, Code: code, Display: cardTypeDisplay[code]}
}

// codeMember is the element that holds an order's code, by resource type.
func codeMember(typ string) string {
	switch typ {
	case "ServiceRequest":
		return "code"
	case "DeviceRequest":
		return "codeCodeableConcept"
	case "MedicationRequest":
		return "medicationCodeableConcept"
	}
	return ""
}

// alternateCard proposes the rule's alternative: one update of the order
// with its code replaced (CRD crd-respar-1).
func (c *call) alternateCard(d *decision, alt coverage.Code, name string) (Card, bool) {
	member := codeMember(d.t.o.ResourceType)
	if member == "" {
		return Card{}, false
	}
	altName := alt.Display
	if altName == "" {
		altName = alt.Code
	}
	cc := fhir.CodeableConcept{Coding: []fhir.Coding{{System: alt.System, Code: alt.Code, Display: alt.Display}}, Text: alt.Display}
	set := map[string]any{member: cc}
	if member == "codeCodeableConcept" || member == "medicationCodeableConcept" {
		// A choice element: drop the reference form if present.
		set[strings.Replace(member, "CodeableConcept", "Reference", 1)] = nil
	}
	res, err := replaceMembers(d.t.raw, set)
	if err != nil {
		return Card{}, false
	}
	indicator := "info"
	summary := "Consider " + altName + " instead of " + name
	if d.ci.Covered == "not-covered" {
		indicator = "warning"
		summary = name + " is not covered; consider " + altName
	}
	card := c.card(d, typeAlternatives, indicator, summary,
		"The plan covers "+altName+" where "+name+" was ordered. Accepting replaces the code of the order; nothing else changes.")
	card.SelectionBehavior = "at-most-one"
	card.Suggestions = []Suggestion{{
		Label: truncate("Order "+altName+" instead", 80), UUID: uuid.NewString(), IsRecommended: d.ci.Covered == "not-covered",
		Actions: []Action{{Type: "update", Description: "Change " + d.t.ref + " to " + altName, Resource: res}},
	}}
	return card, true
}

// additionalOrdersCard suggests companion orders not already in the draft
// orders: one suggestion per companion, each a create.
func (c *call) additionalOrdersCard(d *decision, comps []coverage.Code, name string) (Card, bool) {
	var sugg []Suggestion
	var names []string
	for _, comp := range comps {
		if _, ok := c.draftWithCode(comp); ok {
			continue
		}
		compName := comp.Display
		if compName == "" {
			compName = comp.Code
		}
		sr := map[string]any{
			"resourceType": "ServiceRequest",
			"id":           uuid.NewString(),
			"status":       "draft",
			"intent":       "original-order",
			"code":         fhir.CodeableConcept{Coding: []fhir.Coding{{System: comp.System, Code: comp.Code, Display: comp.Display}}, Text: comp.Display},
			"subject":      fhir.Reference{Reference: "Patient/" + c.hc.PatientID},
		}
		if d.t.o.Requester != nil {
			sr["requester"] = d.t.o.Requester
		}
		res, err := json.Marshal(sr)
		if err != nil {
			continue
		}
		names = append(names, compName)
		sugg = append(sugg, Suggestion{Label: truncate("Add "+compName, 80), UUID: uuid.NewString(),
			Actions: []Action{{Type: "create", Description: "Add an order for " + compName, Resource: res}}})
	}
	if len(sugg) == 0 {
		return Card{}, false
	}
	card := c.card(d, typeReminder, "info", name+" usually comes with "+strings.Join(names, ", "),
		"The payer expects "+strings.Join(names, ", ")+" to accompany "+name+". Add the orders you want.")
	card.SelectionBehavior = "any"
	card.Suggestions = sugg
	return card, true
}

// dtrCard launches the payer's DTR app for the order's questionnaires.
func (c *call) dtrCard(d *decision, launch, name string) Card {
	app, _ := json.Marshal(map[string]any{
		"questionnaire": d.ci.Questionnaire,
		"order":         d.t.ref,
		"coverage":      d.ci.Coverage.Reference,
	})
	card := c.card(d, typeCoverageInfo, "info", "Complete the payer's documentation for "+name,
		"The payer needs documentation for "+name+". Launch the documentation app to complete it; most answers are filled in from the chart.")
	card.Links = []Link{{Label: "Complete documentation", URL: launch, Type: "smart", AppContext: string(app)}}
	return card
}

// formCard asks the EHR to create a questionnaire Task (CRD request form
// completion, profile-taskquestionnaire) for each questionnaire.
func (c *call) formCard(d *decision, name string) Card {
	card := c.card(d, typeCoverageInfo, "info", "Documentation form needed for "+name,
		"The payer needs a form completed for "+name+". Accepting adds a task to complete it.")
	var actions []Action
	for _, q := range d.ci.Questionnaire {
		task := map[string]any{
			"resourceType": "Task",
			"id":           uuid.NewString(),
			"meta":         map[string]any{"profile": []string{"http://hl7.org/fhir/us/davinci-crd/StructureDefinition/profile-taskquestionnaire"}},
			"status":       "ready",
			"intent":       "order",
			"code": fhir.CodeableConcept{Coding: []fhir.Coding{{
				System: "http://hl7.org/fhir/uv/sdc/CodeSystem/temp", Code: "complete-questionnaire"}}},
			"description": "Complete the payer's form for " + name,
			"for":         fhir.Reference{Reference: "Patient/" + c.hc.PatientID},
			"focus":       fhir.Reference{Reference: d.t.ref},
			"authoredOn":  c.now.Format("2006-01-02T15:04:05Z07:00"),
			"requester":   fhir.Reference{Display: c.payerName()},
			"input": []map[string]any{{
				"type":           fhir.CodeableConcept{Text: "questionnaire"},
				"valueCanonical": q,
			}},
		}
		res, err := json.Marshal(task)
		if err != nil {
			continue
		}
		actions = append(actions, Action{Type: "create", Description: "Add a task to complete " + questionnaireName(q), Resource: res})
	}
	card.SelectionBehavior = "at-most-one"
	card.Suggestions = []Suggestion{{Label: "Add a task to complete the form", UUID: uuid.NewString(), Actions: actions}}
	return card
}

// updateCoverageCard proposes filling Coverage.subscriberId from the
// member identifier the record already carries, on hooks used by
// administrative staff (CRD resp-70).
func (c *call) updateCoverageCard() (Card, bool) {
	if c.cov == nil || c.cov.SubscriberID != "" || !c.st.on(typeInsurance) ||
		(c.hook != AppointmentBook && c.hook != OrderDispatch && c.hook != EncounterStart) {
		return Card{}, false
	}
	member := memberID(c.cov)
	raw, ok := c.d.lookup("Coverage/" + c.cov.ID)
	if member == "" || !ok {
		return Card{}, false
	}
	res, err := replaceMembers(raw, map[string]any{"subscriberId": member})
	if err != nil {
		return Card{}, false
	}
	card := c.card(nil, typeInsurance, "info", "The coverage record lacks the subscriber ID",
		"The payer matched the member by the member identifier on the coverage record. Accepting copies it into the subscriber ID.")
	card.SelectionBehavior = "at-most-one"
	card.Suggestions = []Suggestion{{Label: "Update the coverage record", UUID: uuid.NewString(),
		Actions: []Action{{Type: "update", Description: "Set the subscriber ID of Coverage/" + c.cov.ID, Resource: res}}}}
	return card, true
}

// orderName is how cards name an order: its code's display, else the code.
func orderName(d *decision) string {
	for _, cd := range d.svc.Codes {
		if cd.Display != "" {
			return cd.Display
		}
	}
	for _, cd := range d.svc.Codes {
		return cd.Code
	}
	return "the " + strings.ToLower(d.t.o.ResourceType[:1]) + d.t.o.ResourceType[1:]
}

func questionnaireName(canonical string) string {
	u, err := url.Parse(strings.SplitN(canonical, "|", 2)[0])
	if err != nil {
		return canonical
	}
	parts := strings.Split(strings.TrimRight(u.Path, "/"), "/")
	return parts[len(parts)-1]
}

func firstSentence(s string) string {
	if i := strings.IndexAny(s, ".!?"); i > 0 {
		return s[:i+1]
	}
	return s
}

// truncate cuts s to at most n characters, ending in an ellipsis when cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimRight(string(r[:n-1]), " ,;:") + "…"
}
