package suite

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/priora/priora/conformance/check"
	"github.com/priora/priora/profiles"
)

// X12 306 review action codes (PAS "Prior Authorization Response").
const (
	x12ReviewAction = "https://codesystem.x12.org/005010/306"
	pasTopic        = "http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic"
	pasSubscription = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-subscription"
	backportStatus  = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4"
)

// itemResult is one ClaimResponse item as an EHR reads it.
type itemResult = check.PASItem

// pasResponse is a PAS Response Bundle (or Inquiry Response Bundle) that
// has been read (and, by checkResponse, checked).
type pasResponse struct{ *check.PASAnswer }

// reviewActions lists the items' X12 306 codes, in order.
func (r *pasResponse) reviewActions() []string {
	var out []string
	for _, it := range r.Items {
		out = append(out, fmt.Sprintf("%d:%s", it.Sequence, cmp.Or(it.ReviewAction, "none")))
	}
	return out
}

func (r *pasResponse) hasAction(code string) bool {
	return slices.ContainsFunc(r.Items, func(it itemResult) bool { return it.ReviewAction == code })
}

// sequences lists the item sequences answered.
func (r *pasResponse) sequences() []int { return r.Sequences() }

// readResponse decodes a PAS response Bundle and reads its ClaimResponse
// and items without judging them (for tests that only need the content).
func readResponse(body []byte) (*pasResponse, error) {
	b, err := decodeObject(body)
	if err != nil {
		return nil, fmt.Errorf("the answer is not a JSON object: %v", err)
	}
	return readBundle(b)
}

func readBundle(b map[string]any) (*pasResponse, error) {
	r, err := check.ReadPAS(b)
	if err != nil {
		return nil, err
	}
	return &pasResponse{r}, nil
}

// checkResponse checks a PAS Response Bundle (inquiry: a PAS Inquiry
// Response Bundle) the way an EHR and the PAS kit do: profile validation,
// then the shared checker (conformance/check: entry rules, references
// resolvable in the Bundle, ClaimResponse codes, item sequences against
// the submitted ones when known). Each finding fails t; the response is
// returned when it could be read.
func (s *session) checkResponse(t *T, label string, b map[string]any, submitted []int, inquiry bool) *pasResponse {
	var res profiles.Result
	profile := "profile-pas-response-bundle"
	if inquiry {
		res, profile = s.v.ValidatePASInquiryResponse(mustJSON(b)), "profile-pas-inquiry-response-bundle"
	} else {
		res = s.v.ValidatePASResponse(mustJSON(b))
	}
	if res.HasErrors() {
		t.Failf("PAS spec-23/R26: the %s does not conform to %s (%d errors):%s", label, profile, len(res.Errors()), issues(res, 8))
	}
	r, fs := check.PASResponse(b, check.PASOptions{Inquiry: inquiry, Submitted: submitted})
	for _, f := range fs {
		t.Failf("%s: %s %s", f.Rule, label, strings.TrimSuffix(f.Where+" "+f.Msg, " "))
	}
	if r == nil {
		t.Fatalf("%s: cannot be read", label)
	}
	return &pasResponse{r}
}

// resolveEntry returns the entry a reference (urn, absolute or Type/id)
// points at.
func resolveEntry(b map[string]any, ref string) map[string]any {
	relative := !strings.Contains(ref, ":")
	for _, ev := range arr(b["entry"]) {
		e := obj(ev)
		fu := str(e, "fullUrl")
		res := obj(e["resource"])
		if fu == ref || relative && (strings.HasSuffix(fu, "/"+ref) || str(res, "resourceType")+"/"+str(res, "id") == ref) {
			return e
		}
		if !relative && strings.HasPrefix(ref, "http") && str(res, "id") != "" && strings.HasSuffix(ref, "/"+str(res, "resourceType")+"/"+str(res, "id")) {
			return e
		}
	}
	return nil
}

// msElement is a must-support element and its path of JSON members.
type msElement struct {
	ID   string
	Path string
}

// present reports whether the path has a value in any of the resources.
func (m msElement) present(resources []map[string]any) bool {
	segs := splitPath(m.Path)
	for _, r := range resources {
		if hasPath(r, segs) {
			return true
		}
	}
	return false
}

// splitPath splits at dots outside parentheses.
func splitPath(p string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range p {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case '.':
			if depth == 0 {
				out = append(out, p[start:i])
				start = i + 1
			}
		}
	}
	return append(out, p[start:])
}

func hasPath(v any, segs []string) bool {
	if len(segs) == 0 {
		return v != nil
	}
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if hasPath(e, segs) {
				return true
			}
		}
		return false
	case map[string]any:
		seg := segs[0]
		if name, url, ok := strings.Cut(seg, "("); ok {
			url = strings.TrimSuffix(url, ")")
			for _, e := range arr(x[name]) {
				if str(obj(e), "url") == url && hasPath(e, segs[1:]) {
					return true
				}
			}
			return false
		}
		if base, ok := strings.CutSuffix(seg, "[x]"); ok {
			for k, val := range x {
				if strings.HasPrefix(k, base) && len(k) > len(base) && hasPath(val, segs[1:]) {
					return true
				}
			}
			return false
		}
		return hasPath(x[seg], segs[1:])
	}
	return false
}

// missingMS lists the must-support elements none of the resources has.
func missingMS(list []msElement, resources []map[string]any) []string {
	var out []string
	for _, m := range list {
		if !m.present(resources) {
			out = append(out, m.ID)
		}
	}
	return out
}
