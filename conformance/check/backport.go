package check

import (
	"fmt"
	"slices"
	"strconv"
)

// The rules of the Subscriptions R5 Backport IG 1.1.0 for R4
// (backport-subscription-notification-r4, backport-subscription-status-r4,
// StructureDefinitions in its input/fsh/BackportNotificationR4.fsh). Its
// package is not among the embedded ones, so profile validation cannot
// check them; these checkers do, beyond the base R4 validation the caller
// does.

// Backport profile canonicals.
const (
	BackportNotification = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4"
	BackportStatus       = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4"
)

// Notification checks a backport notification Bundle: a history Bundle
// whose first entry is a SubscriptionStatus (backport-notification-bundle-
// r4-1), each entry with fullUrl, request and response (history Bundles,
// R4 bdl-3/4 and the backport's R4 rules), and returns the Bundles that
// follow it (a full-resource event's PAS Response Bundles) for the caller
// to check in turn.
func Notification(b map[string]any) (status map[string]any, focus []map[string]any, fs []Finding) {
	var f findings
	if rt, typ := str(b, "resourceType"), str(b, "type"); rt != "Bundle" || typ != "history" {
		f.add("backport-notification", "Bundle", "is a %s of type %q, want a history Bundle", rt, typ)
	}
	if b["timestamp"] == nil {
		f.add("backport-notification", "Bundle.timestamp", "is missing (a notification says when it was sent)")
	}
	entries := arr(b["entry"])
	if len(entries) == 0 {
		f.add("backport-notification-bundle-r4-1", "Bundle.entry", "is empty; the first entry must be a SubscriptionStatus Parameters")
		return nil, nil, f
	}
	for i, ev := range entries {
		e := obj(ev)
		w := fmt.Sprintf("Bundle.entry[%d]", i)
		if str(e, "fullUrl") == "" {
			f.add("backport-notification", w, "has no fullUrl")
		}
		req, resp := obj(e["request"]), obj(e["response"])
		if str(req, "method") == "" || str(req, "url") == "" {
			f.add("backport-notification", w+".request", "needs method and url (history Bundle entry)")
		}
		if str(resp, "status") == "" {
			f.add("backport-notification", w+".response", "needs status (history Bundle entry)")
		}
		res := obj(e["resource"])
		if i == 0 {
			if str(res, "resourceType") != "Parameters" {
				f.add("backport-notification-bundle-r4-1", w+".resource", "is a %q, want the SubscriptionStatus Parameters", str(res, "resourceType"))
				continue
			}
			status = res
			f = append(f, SubscriptionStatus(res, w+".resource")...)
			continue
		}
		if str(res, "resourceType") == "Bundle" {
			focus = append(focus, res)
		}
	}
	return status, focus, f
}

// SubscriptionStatus checks a backport-subscription-status-r4 Parameters:
// subscription 1..1 (Reference), topic 0..1 (canonical), status 1..1 and
// type 1..1 (codes of R4's subscription-status and R5's
// subscription-notification-type), events-since-subscription-start 0..1
// (string holding an integer), notification-event 0..* with event-number
// 1..1 (string), timestamp 0..1 (instant), focus 0..1 (Reference), and
// error 0..* (CodeableConcept).
func SubscriptionStatus(p map[string]any, at string) []Finding {
	var f findings
	count := map[string]int{}
	for i, pv := range arr(p["parameter"]) {
		q := obj(pv)
		w := fmt.Sprintf("%s.parameter[%d]", at, i)
		name := str(q, "name")
		count[name]++
		switch name {
		case "subscription":
			if str(obj(q["valueReference"]), "reference") == "" {
				f.add("backport-subscription-status-r4", w, "subscription needs a valueReference")
			}
		case "topic":
			if str(q, "valueCanonical") == "" {
				f.add("backport-subscription-status-r4", w, "topic needs a valueCanonical")
			}
		case "status":
			if v := str(q, "valueCode"); !slices.Contains([]string{"requested", "active", "error", "off", "entered-in-error"}, v) {
				f.add("backport-subscription-status-r4", w, "status %q is not a subscription-status code", v)
			}
		case "type":
			if v := str(q, "valueCode"); !slices.Contains([]string{"handshake", "heartbeat", "event-notification", "query-status", "query-event"}, v) {
				f.add("backport-subscription-status-r4", w, "type %q is not a subscription-notification-type code", v)
			}
		case "events-since-subscription-start":
			if _, err := strconv.ParseInt(str(q, "valueString"), 10, 64); err != nil {
				f.add("backport-subscription-status-r4", w, "events-since-subscription-start needs a valueString holding a number, not %v", q["valueString"])
			}
		case "notification-event":
			parts := map[string]int{}
			for j, pp := range arr(q["part"]) {
				part := obj(pp)
				pw := fmt.Sprintf("%s.part[%d]", w, j)
				parts[str(part, "name")]++
				switch str(part, "name") {
				case "event-number":
					if _, err := strconv.ParseInt(str(part, "valueString"), 10, 64); err != nil {
						f.add("backport-subscription-status-r4", pw, "event-number needs a valueString holding a number")
					}
				case "timestamp":
					if str(part, "valueInstant") == "" {
						f.add("backport-subscription-status-r4", pw, "timestamp needs a valueInstant")
					}
				case "focus", "additional-context":
					if obj(part["valueReference"]) == nil {
						f.add("backport-subscription-status-r4", pw, "%s needs a valueReference", str(part, "name"))
					}
				}
			}
			for _, n := range []string{"event-number"} {
				if parts[n] != 1 {
					f.add("backport-subscription-status-r4", w, "notification-event has %d %s parts, want 1", parts[n], n)
				}
			}
			for _, n := range []string{"timestamp", "focus"} {
				if parts[n] > 1 {
					f.add("backport-subscription-status-r4", w, "notification-event has %d %s parts, want at most 1", parts[n], n)
				}
			}
		case "error":
			if obj(q["valueCodeableConcept"]) == nil {
				f.add("backport-subscription-status-r4", w, "error needs a valueCodeableConcept")
			}
		}
	}
	for _, n := range []string{"subscription", "status", "type"} {
		if count[n] != 1 {
			f.add("backport-subscription-status-r4", at, "has %d %s parameters, want 1", count[n], n)
		}
	}
	for _, n := range []string{"topic", "events-since-subscription-start"} {
		if count[n] > 1 {
			f.add("backport-subscription-status-r4", at, "has %d %s parameters, want at most 1", count[n], n)
		}
	}
	return f
}
