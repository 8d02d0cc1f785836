package desk

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/pas"
)

// The request Bundle is shown, never changed: these views read the few
// elements a reviewer needs from its resources, and tolerate anything
// missing or oddly shaped (the request passed validation, but older
// requests or lenient modes may hold less).

// labelValue is one line of a description list.
type labelValue struct{ Label, Value string }

// partyView is a person or organization as shown: a name and details.
type partyView struct {
	Kind    string
	Name    string
	Details []labelValue
}

// requestParties are the parties of the request: the patient, their
// coverage, and the provider asking.
type requestParties struct {
	Patient, Coverage, Provider partyView
}

type humanName struct {
	Use    string   `json:"use"`
	Text   string   `json:"text"`
	Family string   `json:"family"`
	Given  []string `json:"given"`
	Prefix []string `json:"prefix"`
	Suffix []string `json:"suffix"`
}

// nameOf renders a resource's name: a string (Organization, Location) or
// a list of HumanNames (the official one first).
func nameOf(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var names []humanName
	if json.Unmarshal(raw, &names) != nil || len(names) == 0 {
		return ""
	}
	n := names[0]
	for _, c := range names {
		if c.Use == "official" {
			n = c
			break
		}
	}
	if n.Text != "" {
		return n.Text
	}
	parts := append(append(append([]string{}, n.Prefix...), n.Given...), n.Family)
	parts = append(parts, n.Suffix...)
	return strings.Join(strings.Fields(strings.Join(parts, " ")), " ")
}

// parties reads the patient, coverage and requesting provider from the
// request Bundle (its first entry is the Claim).
func parties(raw []byte) requestParties {
	out := requestParties{
		Patient:  partyView{Kind: "Patient"},
		Coverage: partyView{Kind: "Coverage"},
		Provider: partyView{Kind: "Requesting provider"},
	}
	b, err := fhir.DecodeBundle(raw)
	if err != nil || len(b.Entry) == 0 {
		return out
	}
	var c fhir.Claim
	if json.Unmarshal(b.Entry[0].Resource, &c) != nil {
		return out
	}
	from := b.Entry[0].FullURL
	resolve := func(ref *fhir.Reference) (json.RawMessage, string) {
		if ref == nil {
			return nil, ""
		}
		if j := b.Resolve(ref.Reference, from); j >= 0 {
			return b.Entry[j].Resource, b.Entry[j].Type
		}
		return nil, ""
	}

	if res, _ := resolve(c.Patient); res != nil {
		var p struct {
			fhir.Party
			Gender string `json:"gender"`
		}
		_ = json.Unmarshal(res, &p)
		out.Patient.Name = nameOf(p.Name)
		out.Patient.Details = appendIf(out.Patient.Details, "Birth date", p.BirthDate)
		out.Patient.Details = appendIf(out.Patient.Details, "Gender", p.Gender)
		for _, id := range p.Identifier {
			label := "Identifier"
			if cd, ok := id.Type.Code(""); ok && cd.Code == "MB" {
				label = "Member ID"
			}
			out.Patient.Details = appendIf(out.Patient.Details, label, id.Value)
		}
	}

	var cov *fhir.Reference
	for _, in := range c.Insurance {
		if cov == nil || in.Focal {
			cov = in.Coverage
		}
	}
	if res, _ := resolve(cov); res != nil {
		var cv fhir.Coverage
		_ = json.Unmarshal(res, &cv)
		out.Coverage.Details = appendIf(out.Coverage.Details, "Subscriber ID", cv.SubscriberID)
		for _, id := range cv.Identifier {
			if cd, ok := id.Type.Code(""); ok && cd.Code == "MB" {
				out.Coverage.Details = appendIf(out.Coverage.Details, "Member ID", id.Value)
			}
		}
		out.Coverage.Details = appendIf(out.Coverage.Details, "Status", cv.Status)
		for _, p := range cv.Payor {
			name := p.Display
			if pr, _ := resolve(&p); pr != nil {
				var party fhir.Party
				_ = json.Unmarshal(pr, &party)
				if n := nameOf(party.Name); n != "" {
					name = n
				}
			}
			out.Coverage.Name = first(out.Coverage.Name, name)
		}
		for _, cl := range cv.Class {
			label := "Class"
			if cd, ok := cl.Type.Code(""); ok && cd.Code != "" {
				label = strings.ToUpper(cd.Code[:1]) + cd.Code[1:]
			}
			out.Coverage.Details = appendIf(out.Coverage.Details, label, strings.TrimSpace(cl.Value+" "+paren(cl.Name)))
		}
		if cv.Period != nil {
			out.Coverage.Details = appendIf(out.Coverage.Details, "Period", dateRange(cv.Period.Start, cv.Period.End))
		}
		if cd, ok := cv.Type.Code(""); ok {
			out.Coverage.Details = appendIf(out.Coverage.Details, "Type", first(cd.Display, cd.Code))
		}
	}

	if res, typ := resolve(c.Provider); res != nil {
		var p fhir.Party
		_ = json.Unmarshal(res, &p)
		out.Provider.Name = nameOf(p.Name)
		out.Provider.Details = appendIf(out.Provider.Details, "Type", typ)
		out.Provider.Details = appendIf(out.Provider.Details, "NPI", p.IdentifierValue("http://hl7.org/fhir/sid/us-npi"))
		if typ == "PractitionerRole" {
			if pr, _ := resolve(p.Practitioner); pr != nil {
				var who fhir.Party
				_ = json.Unmarshal(pr, &who)
				out.Provider.Name = nameOf(who.Name)
				out.Provider.Details = appendIf(out.Provider.Details, "Practitioner NPI", who.IdentifierValue("http://hl7.org/fhir/sid/us-npi"))
			}
			if org, _ := resolve(p.Organization); org != nil {
				var o fhir.Party
				_ = json.Unmarshal(org, &o)
				out.Provider.Details = appendIf(out.Provider.Details, "Organization", nameOf(o.Name))
				out.Provider.Details = appendIf(out.Provider.Details, "Organization NPI", o.IdentifierValue("http://hl7.org/fhir/sid/us-npi"))
			}
		}
	} else if c.Provider != nil {
		out.Provider.Name = c.Provider.Display
	}
	return out
}

func appendIf(l []labelValue, label, value string) []labelValue {
	if strings.TrimSpace(value) == "" {
		return l
	}
	return append(l, labelValue{label, value})
}

func first(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}

func dateRange(from, to string) string {
	switch {
	case from == "" && to == "":
		return ""
	case to == "" || to == from:
		return from
	case from == "":
		return "until " + to
	}
	return from + " to " + to
}

// supportView is one supporting-information entry as shown.
type supportView struct {
	Sequence    int
	Category    string
	Type        string
	Title       string
	Details     []labelValue
	Attachments []attachmentView
	Questions   []questionView
	// JSON is the resource, indented, for types the desk has no view of.
	JSON string
	// New marks information the provider sent after a request for it.
	New bool
}

// attachmentView is one DocumentReference attachment: shown inline when
// it is short text or an image, downloadable when its data is in the
// request, and named by URL when the provider keeps it.
type attachmentView struct {
	Title       string
	ContentType string
	Size        string
	Href        string
	Text        string
	Image       bool
	URL         string
}

// questionView is one QuestionnaireResponse item, with nested items.
type questionView struct {
	Text    string
	Answers []string
	Items   []questionView
}

type attachment struct {
	ContentType string `json:"contentType"`
	Data        string `json:"data"`
	URL         string `json:"url"`
	Title       string `json:"title"`
	Size        int64  `json:"size"`
	Creation    string `json:"creation"`
}

type documentReference struct {
	Status      string                `json:"status"`
	Type        *fhir.CodeableConcept `json:"type"`
	Description string                `json:"description"`
	Date        string                `json:"date"`
	Content     []struct {
		Attachment attachment `json:"attachment"`
	} `json:"content"`
}

type questionnaireResponse struct {
	Questionnaire string   `json:"questionnaire"`
	Status        string   `json:"status"`
	Authored      string   `json:"authored"`
	Item          []qrItem `json:"item"`
}

type qrItem struct {
	LinkID string                       `json:"linkId"`
	Text   string                       `json:"text"`
	Answer []map[string]json.RawMessage `json:"answer"`
	Item   []qrItem                     `json:"item"`
}

// inlineTextLimit is the most attachment text shown in the page.
const inlineTextLimit = 64 << 10

// claimSupporting returns the request Claim's supportingInfo entries by
// sequence: the values that are not resources (a message, dates) are read
// from there.
func claimSupporting(raw []byte) map[int]fhir.ClaimSupporting {
	out := map[int]fhir.ClaimSupporting{}
	b, err := fhir.DecodeBundle(raw)
	if err != nil || len(b.Entry) == 0 {
		return out
	}
	var c fhir.Claim
	if json.Unmarshal(b.Entry[0].Resource, &c) != nil {
		return out
	}
	for _, si := range c.SupportingInfo {
		out[si.Sequence] = si
	}
	return out
}

// humanize turns a camelCase code into words: admissionDates → Admission dates.
func humanize(code string) string {
	var b strings.Builder
	for i, r := range code {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
			r += 'a' - 'A'
		}
		if i == 0 && r >= 'a' && r <= 'z' {
			r -= 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// supportViews renders the task's supporting information; claim holds the
// Claim's entries by sequence (see claimSupporting).
func supportViews(taskID string, infos []pas.SupportingInfo, claim map[int]fhir.ClaimSupporting) []supportView {
	var out []supportView
	for _, si := range infos {
		v := supportView{Sequence: si.Sequence, Category: si.Category, Type: si.Type, New: si.New}
		switch si.Type {
		case "DocumentReference":
			var doc documentReference
			_ = json.Unmarshal(si.Resource, &doc)
			if cd, ok := doc.Type.Code(""); ok {
				v.Title = first(cd.Display, doc.Type.Text, cd.Code)
			}
			v.Title = first(doc.Description, v.Title, "Document")
			if cd, ok := doc.Type.Code(""); ok && v.Title != cd.Display {
				v.Details = appendIf(v.Details, "Document type", first(cd.Display, cd.Code))
			}
			v.Details = appendIf(v.Details, "Date", doc.Date)
			v.Details = appendIf(v.Details, "Status", doc.Status)
			for n, c := range doc.Content {
				v.Attachments = append(v.Attachments, attachmentOf(taskID, si.Sequence, n, c.Attachment))
			}
		case "QuestionnaireResponse":
			var qr questionnaireResponse
			_ = json.Unmarshal(si.Resource, &qr)
			v.Title = "Questionnaire answers"
			v.Details = appendIf(v.Details, "Questionnaire", qr.Questionnaire)
			v.Details = appendIf(v.Details, "Status", qr.Status)
			v.Details = appendIf(v.Details, "Authored", qr.Authored)
			v.Questions = questions(qr.Item)
		case "":
			v.Title = first(humanize(si.Category), "Information")
			c := claim[si.Sequence]
			if cd, ok := c.Code.Code(""); ok {
				v.Details = appendIf(v.Details, "Code", first(cd.Display, cd.Code))
			}
			if c.ValueString != nil {
				v.Details = appendIf(v.Details, "Value", *c.ValueString)
			}
			if c.TimingDate != nil {
				v.Details = appendIf(v.Details, "Date", *c.TimingDate)
			}
			if c.TimingPeriod != nil {
				v.Details = appendIf(v.Details, "Period", dateRange(c.TimingPeriod.Start, c.TimingPeriod.End))
			}
			if c.ValueReference != nil {
				v.Details = appendIf(v.Details, "Reference", c.ValueReference.Reference+" (not included in the request)")
			}
		default:
			v.Title = si.Type
			var buf bytes.Buffer
			if json.Indent(&buf, si.Resource, "", "  ") == nil {
				v.JSON = buf.String()
			}
		}
		out = append(out, v)
	}
	return out
}

func attachmentOf(taskID string, seq, n int, a attachment) attachmentView {
	v := attachmentView{Title: first(a.Title, "Attachment "+strconv.Itoa(n+1)), ContentType: a.ContentType, URL: a.URL}
	if a.Data == "" {
		if a.Size > 0 {
			v.Size = byteSize(a.Size)
		}
		return v
	}
	data, err := base64.StdEncoding.DecodeString(a.Data)
	if err != nil {
		v.Title += " (the attached data is not valid base64)"
		return v
	}
	v.Size = byteSize(int64(len(data)))
	v.Href = fmt.Sprintf("/desk/tasks/%s/attachments/%d/%d", taskID, seq, n)
	switch mediaType(a.ContentType) {
	case "text/plain":
		if len(data) <= inlineTextLimit && utf8.Valid(data) {
			v.Text = string(data)
		}
	case "image/png", "image/jpeg", "image/gif":
		v.Image = true
	}
	return v
}

func questions(items []qrItem) []questionView {
	var out []questionView
	for _, it := range items {
		q := questionView{Text: first(it.Text, it.LinkID)}
		for _, a := range it.Answer {
			if s := answerText(a); s != "" {
				q.Answers = append(q.Answers, s)
			}
			if nested, ok := a["item"]; ok {
				var sub []qrItem
				if json.Unmarshal(nested, &sub) == nil {
					q.Items = append(q.Items, questions(sub)...)
				}
			}
		}
		q.Items = append(q.Items, questions(it.Item)...)
		out = append(out, q)
	}
	return out
}

// answerText renders a QuestionnaireResponse answer value of any type.
func answerText(a map[string]json.RawMessage) string {
	for k, raw := range a {
		if !strings.HasPrefix(k, "value") {
			continue
		}
		switch k {
		case "valueCoding":
			var c fhir.Coding
			_ = json.Unmarshal(raw, &c)
			return first(c.Display, c.Code)
		case "valueQuantity":
			var q fhir.Quantity
			_ = json.Unmarshal(raw, &q)
			return strings.TrimSpace(formatNumber(q.Float()) + " " + first(q.Unit, q.Code))
		case "valueReference":
			var r fhir.Reference
			_ = json.Unmarshal(raw, &r)
			return first(r.Display, r.Reference)
		case "valueAttachment":
			var at attachment
			_ = json.Unmarshal(raw, &at)
			return "Attachment: " + first(at.Title, at.ContentType, at.URL)
		case "valueBoolean":
			var b bool
			_ = json.Unmarshal(raw, &b)
			return map[bool]string{true: "Yes", false: "No"}[b]
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		return string(raw) // numbers
	}
	return ""
}

// decodeAttachment finds attachment n of supporting information seq in a
// task and returns its bytes and content type.
func decodeAttachment(t *pas.TaskDetail, seq, n int) ([]byte, string, string, bool) {
	for _, si := range t.SupportingInfo {
		if si.Sequence != seq || si.Type != "DocumentReference" {
			continue
		}
		return documentAttachment(si.Resource, n)
	}
	return nil, "", "", false
}

// documentAttachment decodes the n-th attachment of a DocumentReference.
func documentAttachment(raw json.RawMessage, n int) ([]byte, string, string, bool) {
	var doc documentReference
	if json.Unmarshal(raw, &doc) != nil || n < 0 || n >= len(doc.Content) {
		return nil, "", "", false
	}
	a := doc.Content[n].Attachment
	data, err := base64.StdEncoding.DecodeString(a.Data)
	if a.Data == "" || err != nil {
		return nil, "", "", false
	}
	return data, a.ContentType, a.Title, true
}

func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

func byteSize(n int64) string {
	switch {
	case n < 1<<10:
		return strconv.FormatInt(n, 10) + " bytes"
	case n < 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KB"
	}
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MB"
}

func formatNumber(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func itoa(i int) string { return strconv.Itoa(i) }
