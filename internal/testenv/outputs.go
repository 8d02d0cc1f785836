package testenv

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/priora/priora/conformance/check"
	"github.com/priora/priora/hooks/hookstest"
)

// ProfileSubscription is the PAS Subscription profile every Subscription
// Priora shows must meet.
const ProfileSubscription = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-subscription"

// checkOutput validates a successful answer by what was asked: every
// output Priora gives is checked, whichever test reads it (issue 17 item
// 10). Each check reports errors on t and lets the test go on.
//
//   - $submit, $inquire and review decisions: PAS response profiles and
//     the shared PAS checker (checkPASResponse);
//   - Subscriptions (create, read, update, search): the PAS Subscription
//     profile, searches as a searchset Bundle;
//   - $status: a searchset Bundle of backport SubscriptionStatus;
//   - the CapabilityStatement, OperationDefinitions and SubscriptionTopic:
//     their R4 definitions;
//   - CDS Hooks calls: the system-action resources against the CRD
//     profiles of the version answered (the call's requestedVersion, else
//     crdVersion, else 2.2).
func checkOutput(t testing.TB, method, path, crdVersion string, request, body []byte) {
	t.Helper()
	v := Validator(t)
	switch {
	case method == http.MethodPost && (path == "/fhir/Claim/$submit" || path == "/fhir/Claim/$inquire"):
		checkPASResponse(t, path, body)
	case method == http.MethodPost && strings.HasPrefix(path, "/review/tasks/") && strings.HasSuffix(path, "/decision"):
		checkPASResponse(t, "/fhir/Claim/$submit", body)
	case strings.HasSuffix(path, "/$status") && strings.HasPrefix(path, "/fhir/Subscription"):
		RequireValid(t, method+" "+path, v.Validate(body))
		requireSearchset(t, method+" "+path, body, func(what string, res json.RawMessage) {
			m, err := check.Decode(res)
			if err != nil {
				t.Errorf("%s is not a JSON object", what)
				return
			}
			for _, f := range check.SubscriptionStatus(m, what) {
				t.Errorf("%s: %s", what, f)
			}
		})
	case path == "/fhir/Subscription" && method == http.MethodGet:
		RequireValid(t, "Subscription search", v.Validate(body))
		requireSearchset(t, "Subscription search", body, func(what string, res json.RawMessage) {
			RequireValid(t, what, v.Validate(res, ProfileSubscription))
		})
	case path == "/fhir/Subscription" || strings.HasPrefix(path, "/fhir/Subscription/"):
		if method != http.MethodDelete {
			RequireValid(t, method+" Subscription", v.Validate(body, ProfileSubscription))
		}
	case method == http.MethodGet && (path == "/fhir/metadata" || strings.HasPrefix(path, "/fhir/OperationDefinition/") || strings.HasPrefix(path, "/fhir/SubscriptionTopic/")):
		RequireValid(t, path, v.Validate(body))
	case method == http.MethodPost && strings.HasPrefix(path, "/cds-services/") && !strings.HasSuffix(path, "/feedback"):
		hookstest.ValidateActions(t, answeredCRDVersion(request, crdVersion), request, body)
	}
}

// answeredCRDVersion is the CRD version Priora answers a hook call in:
// the version it requests (davinci-crd.requestedVersion), else the
// configured one, else 2.2.
func answeredCRDVersion(request []byte, configured string) string {
	var r struct {
		Extension struct {
			Requested string `json:"davinci-crd.requestedVersion"`
		} `json:"extension"`
	}
	_ = json.Unmarshal(request, &r) // a malformed call has no version to read
	switch {
	case strings.HasPrefix(r.Extension.Requested, "2.0"):
		return "2.0"
	case strings.HasPrefix(r.Extension.Requested, "2.1"), strings.HasPrefix(r.Extension.Requested, "2.2"):
		return "2.2"
	case configured != "":
		return configured
	}
	return "2.2"
}

// requireSearchset checks a searchset Bundle's shape (type, total, entry
// fullUrl and search.mode) and hands each entry's resource to each.
func requireSearchset(t testing.TB, what string, body []byte, each func(what string, res json.RawMessage)) {
	t.Helper()
	var b struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Total        *int   `json:"total"`
		Link         []struct {
			Relation string `json:"relation"`
			URL      string `json:"url"`
		} `json:"link"`
		Entry []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
			Search   struct {
				Mode string `json:"mode"`
			} `json:"search"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.ResourceType != "Bundle" || b.Type != "searchset" {
		t.Errorf("%s is not a searchset Bundle (%v)", what, err)
		return
	}
	if b.Total == nil || *b.Total != len(b.Entry) {
		t.Errorf("%s: total %v for %d entries", what, b.Total, len(b.Entry))
	}
	if len(b.Link) == 0 || b.Link[0].Relation != "self" || b.Link[0].URL == "" {
		t.Errorf("%s has no self link", what)
	}
	for i, e := range b.Entry {
		w := what + " entry[" + strconv.Itoa(i) + "]"
		if e.FullURL == "" || e.Search.Mode != "match" {
			t.Errorf("%s: fullUrl %q, search.mode %q; want a fullUrl and match", w, e.FullURL, e.Search.Mode)
		}
		each(w+".resource", e.Resource)
	}
}

// CheckNotification validates a subscription notification Priora sent:
// the backport notification Bundle (R4 Bundle, backport rules) and each
// PAS Response Bundle it carries (PAS response profiles and the shared PAS
// checker). Endpoints in tests call it on every body they accept (or use
// CheckedEndpoint).
func CheckNotification(t testing.TB, body []byte) {
	t.Helper()
	RequireValid(t, "notification", Validator(t).Validate(body))
	b, err := check.Decode(body)
	if err != nil {
		t.Errorf("notification is not a JSON object: %v", err)
		return
	}
	_, focus, fs := check.Notification(b)
	for _, f := range fs {
		t.Errorf("notification: %s", f)
	}
	for i, res := range focus {
		raw, err := json.Marshal(res)
		if err != nil {
			t.Errorf("notification focus %d: %v", i, err)
			continue
		}
		checkPASResponse(t, "/fhir/Claim/$submit", raw)
	}
}

// CheckedEndpoint wraps a test's notification endpoint: every POST body
// is checked with CheckNotification (failures reported on t) before h
// sees it, unchanged.
func CheckedEndpoint(t testing.TB, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return // the sender went away
			}
			CheckNotification(t, body)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		h.ServeHTTP(w, r)
	})
}
