package suite

import (
	"crypto/tls"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/priora/priora/conformance/check"
	"github.com/priora/priora/profiles"
)

// crdState is what the CRD tests learn as they go.
type crdState struct {
	discovery map[string]any
	services  map[string]map[string]any // hook → its (first) service
	calls     map[string][]*hookCall    // hook → the calls of .01
}

// hookCall is one CDS Hooks call and its answer.
type hookCall struct {
	input    string
	hook     string
	url      string
	request  map[string]any
	version  string // CRD version the call asked for ("2.2", "2.0")
	resp     *response
	body     map[string]any
	err      error
	coverage []check.CoverageInfo // from the system actions
}

// The hooks in the kit's group order (3.1 … 3.6).
var crdHooks = []string{"appointment-book", "encounter-start", "encounter-discharge", "order-select", "order-dispatch", "order-sign"}

func primaryHook(h string) bool { return check.PrimaryHook(h) }

const coverageInfoURL = check.CoverageInfoURL

//go:embed standard-prefetch.json
var standardPrefetchJSON []byte

func (s *session) crdTests() []Test {
	var tests []Test
	tests = append(tests, s.discoveryTests()...)
	for i, h := range crdHooks {
		tests = append(tests, s.hookTests(fmt.Sprintf("3.%d", i+1), h)...)
	}
	tests = append(tests, s.acrossHookTests()...)
	return tests
}

func (s *session) discoveryURL() string { return s.c.cdsBase + "/cds-services" }

func (s *session) discoveryTests() []Test {
	const g = "CRD 1 Discovery"
	return []Test{
		{ID: "crd-1.01", Group: g, Name: "TLS 1.2 or newer, and nothing older, when served over https", Run: func(t *T) {
			u, err := url.Parse(s.c.cdsBase)
			if err != nil || u.Scheme != "https" {
				t.Skipf("CRD sec-2/CH-22: %s is not https; TLS is checked only for https endpoints (production CDS services MUST use TLS)", s.c.cdsBase)
			}
			host := u.Host
			if u.Port() == "" {
				host += ":443"
			}
			if err := tlsCheck(t.Context(), host, tls.VersionTLS12); err != nil {
				if err13 := tlsCheck(t.Context(), host, tls.VersionTLS13); err13 != nil {
					t.Failf("CRD sec-2/HRex: neither TLS 1.2 nor 1.3 handshake with %s succeeded: %v", host, err)
				}
			}
			for _, v := range []struct {
				ver  uint16
				name string
			}{{tls.VersionTLS10, "TLS 1.0"}, {tls.VersionTLS11, "TLS 1.1"}} {
				if tlsCheck(t.Context(), host, v.ver) == nil {
					t.Failf("CRD sec-2/HRex sec-9: %s accepted a %s handshake; only TLS 1.2 and newer are allowed", host, v.name)
				}
			}
		}},
		{ID: "crd-1.02", Group: g, Name: "GET /cds-services answers 200 with JSON", Run: func(t *T) {
			r, err := s.c.hook(t.Context(), s.discoveryURL(), nil)
			if err != nil {
				t.Fatalf("GET %s: %v", s.discoveryURL(), err)
			}
			if r.Status != 200 {
				t.Fatalf("CH-03: GET %s answered HTTP %d, want 200: %s", s.discoveryURL(), r.Status, snippet(r.Body))
			}
			m, err := decodeObject(r.Body)
			if err != nil {
				t.Fatalf("CH-03: the discovery answer is not a JSON object: %v", err)
			}
			s.crd.discovery = m
		}},
		{ID: "crd-1.03", Group: g, Name: "Discovery lists services with hook, id, description and davinci-crd.version", Run: func(t *T) {
			d := s.crd.discovery
			if d == nil {
				t.Skipf("no discovery document")
			}
			svcs, ok := d["services"].([]any)
			if !ok {
				t.Fatalf("CH-03: the discovery document has no services array")
			}
			if len(svcs) == 0 {
				t.Skipf("CH-03: the server lists no services")
			}
			s.crd.services = map[string]map[string]any{}
			verRe := regexp.MustCompile(`^\d+\.\d+$`)
			for i, sv := range svcs {
				svc := obj(sv)
				for _, k := range []string{"hook", "id", "description"} {
					if str(svc, k) == "" {
						t.Failf("CH-04: services[%d] has no %s (a required string)", i, k)
					}
				}
				vers := arr(obj(svc["extension"])["davinci-crd.version"])
				if len(vers) == 0 {
					t.Failf("CRD dev-1: services[%d] (%s) declares no extension.davinci-crd.version", i, str(svc, "id"))
				}
				for _, v := range vers {
					if vs, _ := v.(string); !verRe.MatchString(vs) {
						t.Failf("CRD dev-1: services[%d] davinci-crd.version %v is not a \"major.minor\" string", i, v)
					}
				}
				if h := str(svc, "hook"); h != "" && s.crd.services[h] == nil {
					s.crd.services[h] = svc
				}
			}
			var missing []string
			for _, h := range crdHooks {
				if s.crd.services[h] == nil {
					missing = append(missing, h)
				}
			}
			if len(missing) > 0 {
				t.Warnf("CRD hook-4: no service for %s (a CRD server provides one per hook unless the hook is of no use for its coverage)", strings.Join(missing, ", "))
			}
		}},
		{ID: "crd-1.04", Group: g, Name: "Configuration options are complete and unique; primary hooks offer coverage-info", Run: func(t *T) {
			if s.crd.services == nil {
				t.Skipf("no services")
			}
			for _, h := range crdHooks {
				svc := s.crd.services[h]
				if svc == nil {
					continue
				}
				id := str(svc, "id")
				opts := arr(obj(svc["extension"])["davinci-crd.configuration-options"])
				seen := map[string]map[string]bool{"code": {}, "name": {}, "description": {}}
				hasCI := false
				for i, ov := range opts {
					o := obj(ov)
					for _, k := range []string{"code", "type", "name", "description"} {
						if str(o, k) == "" {
							t.Failf("CRD dev-4: %s configuration-options[%d] has no %s", id, i, k)
						}
					}
					if _, ok := o["default"]; !ok {
						t.Failf("CRD dev-4: %s configuration-options[%d] (%s) has no default", id, i, str(o, "code"))
					}
					if typ := str(o, "type"); typ != "" && typ != "boolean" && typ != "integer" {
						t.Failf("CRD dev-4: %s option %s has type %q, want boolean or integer", id, str(o, "code"), typ)
					}
					for k, set := range seen {
						if v := str(o, k); v != "" {
							if set[v] {
								t.Failf("CRD dev-8: %s has two configuration options with %s %q", id, k, v)
							}
							set[v] = true
						}
					}
					hasCI = hasCI || str(o, "code") == "coverage-info"
				}
				if primaryHook(h) && !hasCI {
					t.Failf("CRD dev-5: %s (%s, a primary hook) offers no coverage-info configuration option", id, h)
				}
			}
		}},
		{ID: "crd-1.05", Group: g, Name: "At least one service declares prefetch", Run: func(t *T) {
			if s.crd.services == nil {
				t.Skipf("no services")
			}
			for _, svc := range s.crd.services {
				if len(obj(svc["prefetch"])) > 0 {
					return
				}
			}
			t.Failf("CRD found-24: no service declares prefetch templates")
		}},
		{ID: "crd-1.06", Group: g, Name: "Prefetch templates are CRD's standard expressions", Run: func(t *T) {
			if s.crd.services == nil {
				t.Skipf("no services")
			}
			var std map[string]map[string]string
			if err := json.Unmarshal(standardPrefetchJSON, &std); err != nil {
				t.Fatalf("standard prefetch: %v", err)
			}
			for _, h := range crdHooks {
				svc := s.crd.services[h]
				if svc == nil {
					continue
				}
				known := map[string]bool{}
				for _, tmpl := range std[h] {
					known[normalizeTemplate(tmpl)] = true
				}
				var keys []string
				for k := range obj(svc["prefetch"]) {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					tmpl, _ := obj(svc["prefetch"])[k].(string)
					if !known[normalizeTemplate(tmpl)] {
						t.Warnf("CRD found-29: %s prefetch %q is not one of CRD 2.2's standard expressions for %s: %s", str(svc, "id"), k, h, tmpl)
					}
				}
			}
		}},
	}
}

// normalizeTemplate orders the |-alternatives inside {{ }} so equal
// templates compare equal.
func normalizeTemplate(s string) string {
	re := regexp.MustCompile(`\{\{(.*?)\}\}`)
	return re.ReplaceAllStringFunc(s, func(m string) string {
		inner := strings.Split(strings.TrimSuffix(strings.TrimPrefix(m, "{{"), "}}"), "|")
		for i := range inner {
			inner[i] = strings.TrimSpace(inner[i])
		}
		sort.Strings(inner)
		return "{{" + strings.Join(inner, "|") + "}}"
	})
}

// serviceURL is the endpoint of the hook's service.
func (s *session) serviceURL(hook string) (string, bool) {
	svc := s.crd.services[hook]
	if svc == nil || str(svc, "id") == "" {
		return "", false
	}
	return s.discoveryURL() + "/" + url.PathEscape(str(svc, "id")), true
}

// prepareCall reads a hook input and points it at the suite's mock EHR
// with a fresh hookInstance and access token (as the kit does); the
// input's FHIR resources join the mock EHR's data.
func (s *session) prepareCall(t *T, input string) *hookCall {
	raw, err := s.input(input)
	if err != nil {
		t.Skipf("%v", err)
	}
	req, err := decodeObject(raw)
	if err != nil {
		t.Fatalf("input %s is not a JSON object: %v", input, err)
	}
	if ehr, err := s.input("crd/ehr-data.json"); err == nil {
		if m, err := decodeObject(ehr); err == nil {
			s.l.ehr.add(m)
		}
	}
	for _, part := range []string{"context", "prefetch"} {
		for _, v := range obj(req[part]) {
			s.l.ehr.add(obj(v))
		}
	}
	req["hookInstance"] = newUUID()
	req["fhirServer"] = s.l.ehrURL()
	fa := obj(req["fhirAuthorization"])
	if fa == nil {
		fa = map[string]any{"token_type": "Bearer", "expires_in": 300, "scope": "patient/*.rs", "subject": "priora-conformance"}
		req["fhirAuthorization"] = fa
	}
	fa["access_token"] = newID()
	hook := str(req, "hook")
	call := &hookCall{input: input, hook: hook, request: req, version: "2.2"}
	ext := obj(req["extension"])
	if v, ok := ext["davinci-crd.requestedVersion"].(string); ok {
		call.version = v
	} else if svc := s.crd.services[hook]; svc != nil {
		// dev-3: name the version when the service offers several.
		vers := arr(obj(svc["extension"])["davinci-crd.version"])
		if len(vers) > 1 {
			best := ""
			for _, v := range vers {
				if vs, _ := v.(string); vs > best {
					best = vs
				}
			}
			if ext == nil {
				ext = map[string]any{}
				req["extension"] = ext
			}
			ext["davinci-crd.requestedVersion"] = best
			call.version = best
		} else if len(vers) == 1 {
			call.version, _ = vers[0].(string)
		}
	}
	if strings.HasPrefix(call.version, "2.0") {
		call.version = "2.0"
	}
	return call
}

// invoke sends a call and decodes its answer.
func (s *session) invoke(t *T, call *hookCall) {
	u, ok := s.serviceURL(call.hook)
	if !ok {
		t.Skipf("discovery lists no service for %s", call.hook)
	}
	call.url = u
	call.resp, call.err = s.c.hook(t.Context(), u, mustJSON(call.request))
	if call.err != nil {
		return
	}
	call.body, _ = decodeObject(call.resp.Body)
	if call.body != nil {
		call.coverage = check.CoverageInfos(call.body)
	}
}

func (s *session) hookTests(num, hook string) []Test {
	g := fmt.Sprintf("CRD %s %s", num, hook)
	id := "crd-" + num + "."
	inputs := func() []string { return s.inputGlob("crd/" + hook + "-*.json") }
	calls := func(t *T) []*hookCall {
		var ok []*hookCall
		for _, c := range s.crd.calls[hook] {
			if c.resp != nil && c.resp.Status == 200 && c.body != nil {
				ok = append(ok, c)
			}
		}
		if len(ok) == 0 {
			t.Skipf("no successful %s call", hook)
		}
		return ok
	}
	tests := []Test{
		{ID: id + "01", Group: g, Name: "Service answers every " + hook + " call with 200 and JSON", Run: func(t *T) {
			ins := inputs()
			if len(ins) == 0 {
				t.Skipf("no crd/%s-*.json inputs", hook)
			}
			if _, ok := s.serviceURL(hook); !ok {
				t.Skipf("discovery lists no %s service", hook)
			}
			if s.crd.calls == nil {
				s.crd.calls = map[string][]*hookCall{}
			}
			s.crd.calls[hook] = nil
			for _, in := range ins {
				call := s.prepareCall(t, in)
				s.invoke(t, call)
				s.crd.calls[hook] = append(s.crd.calls[hook], call)
				switch {
				case call.err != nil:
					t.Failf("POST %s (%s): %v", call.url, in, call.err)
				case call.resp.Status != 200:
					t.Failf("CH-13: POST %s with %s answered HTTP %d, want 200: %s", call.url, in, call.resp.Status, snippet(call.resp.Body))
				case call.body == nil:
					t.Failf("CH-13: the answer to %s is not a JSON object: %s", in, snippet(call.resp.Body))
				}
			}
		}},
		{ID: id + "02", Group: g, Name: "Requests carry the required CDS Hooks fields (input)", Run: func(t *T) {
			if len(s.crd.calls[hook]) == 0 {
				t.Skipf("no %s call", hook)
			}
			for _, c := range s.crd.calls[hook] {
				checkRequestFields(t, c)
			}
		}},
		{ID: id + "03", Group: g, Name: "Request context is valid for " + hook + " (input)", Run: func(t *T) {
			if len(s.crd.calls[hook]) == 0 {
				t.Skipf("no %s call", hook)
			}
			for _, c := range s.crd.calls[hook] {
				checkContext(t, c)
				v := s.v
				if c.version == "2.2" {
					v = s.v22
				}
				if res := v.ValidateCRDHookRequest(mustJSON(c.request)); res.HasErrors() {
					t.Warnf("%s: request resources do not all conform to the CRD profiles (%d errors):%s", c.input, len(res.Errors()), issues(res, 3))
				}
			}
		}},
		{ID: id + "04", Group: g, Name: "Responses follow the CDS Hooks and CRD card and action rules", Run: func(t *T) {
			for _, c := range calls(t) {
				checkHookResponse(t, c)
			}
		}},
		{ID: id + "05", Group: g, Name: "Coverage information is returned as a system action", Run: func(t *T) {
			for _, c := range calls(t) {
				if len(c.coverage) == 0 {
					if primaryHook(hook) {
						t.Failf("CRD hook-16/resp-26/resp-29: the %s answer to %s has no update systemAction carrying %s (primary hooks SHALL return coverage information for every order/appointment)", hook, c.input, coverageInfoURL)
					}
					continue
				}
				if primaryHook(hook) && hook != "order-dispatch" {
					for _, ref := range inScope(c.request) {
						if !annotated(c, ref) {
							t.Failf("CRD hook-16/resp-29: %s: %s has no coverage-information system action (annotated: %s)", c.input, ref, strings.Join(annotatedRefs(c), ", "))
						}
					}
				}
			}
			if !primaryHook(hook) && !slices.ContainsFunc(s.crd.calls[hook], func(c *hookCall) bool { return len(c.coverage) > 0 }) {
				t.Skipf("no coverage information returned (optional for %s, a secondary hook)", hook)
			}
		}},
		{ID: id + "06", Group: g, Name: "Coverage information system actions are valid", Run: func(t *T) {
			n := 0
			for _, c := range calls(t) {
				if len(c.coverage) > 0 {
					n++
					s.checkCoverageActions(t, c)
				}
			}
			if n == 0 {
				t.Skipf("no coverage information to check")
			}
		}},
		{ID: id + "07", Group: g, Name: "No coverage information is returned as a card", Run: func(t *T) {
			for _, c := range calls(t) {
				for i, cv := range arr(c.body["cards"]) {
					for j, sv := range arr(obj(cv)["suggestions"]) {
						for k, av := range arr(obj(sv)["actions"]) {
							res := obj(obj(av)["resource"])
							if len(check.Extensions(res, coverageInfoURL)) > 0 {
								t.Failf("CRD resp-25: %s: cards[%d].suggestions[%d].actions[%d] carries coverage information on %s/%s; coverage information SHALL be a systemAction, never a card", c.input, i, j, k, str(res, "resourceType"), str(res, "id"))
							}
						}
					}
				}
			}
		}},
	}
	variants := []struct {
		n, name, rule string
		edit          func(map[string]any)
		wantCoverage  bool
	}{
		{"08", "coverage-info: false turns coverage information off", "CRD dev-14", func(r map[string]any) {
			configuration(r)["coverage-info"] = false
		}, false},
		{"09", "An unknown configuration option is ignored", "CRD dev-17", func(r map[string]any) {
			configuration(r)["priora-conformance-unknown-option"] = true
		}, true},
		{"10", "An unknown context field is ignored", "CRD hook-23", func(r map[string]any) {
			obj(r["context"])["prioraConformanceUnknown"] = "ignored"
		}, true},
		{"11", "An unknown top-level CDS Hooks element is ignored", "CRD found-33", func(r map[string]any) {
			r["prioraConformanceUnknown"] = map[string]any{"note": "ignored"}
		}, true},
	}
	for _, v := range variants {
		tests = append(tests, Test{ID: id + v.n, Group: g, Name: v.name, Run: func(t *T) {
			var base *hookCall
			for _, c := range calls(t) {
				if len(c.coverage) > 0 {
					base = c
					break
				}
			}
			if base == nil {
				t.Skipf("no %s call returned coverage information to vary", hook)
			}
			call := s.prepareCall(t, base.input)
			v.edit(call.request)
			s.invoke(t, call)
			switch {
			case call.err != nil:
				t.Fatalf("POST %s: %v", call.url, call.err)
			case call.resp.Status != 200 || call.body == nil:
				t.Fatalf("%s: the varied %s call answered HTTP %d, want 200 with JSON: %s", v.rule, hook, call.resp.Status, snippet(call.resp.Body))
			}
			if v.wantCoverage && len(call.coverage) == 0 {
				t.Failf("%s: with the change the answer carries no coverage information (it did without)", v.rule)
			}
			if !v.wantCoverage {
				if len(call.coverage) > 0 {
					t.Failf("%s: with coverage-info false the answer still carries %d coverage-information extension(s)", v.rule, len(call.coverage))
				}
				for i, av := range arr(call.body["systemActions"]) {
					res := obj(obj(av)["resource"])
					if str(res, "resourceType") == "Task" && strings.Contains(string(mustJSON(res)), "questionnaire") {
						t.Failf("%s: with coverage-info false systemActions[%d] still asks for form completion (a questionnaire Task)", v.rule, i)
					}
				}
			}
		}})
	}
	return tests
}

// configuration returns (creating) a request's davinci-crd.configuration.
func configuration(r map[string]any) map[string]any {
	ext := obj(r["extension"])
	if ext == nil {
		ext = map[string]any{}
		r["extension"] = ext
	}
	c := obj(ext["davinci-crd.configuration"])
	if c == nil {
		c = map[string]any{}
		ext["davinci-crd.configuration"] = c
	}
	return c
}

func (s *session) acrossHookTests() []Test {
	const g = "CRD 4 Across Hooks (2.2.1)"
	all := func() []*hookCall {
		var out []*hookCall
		for _, h := range crdHooks {
			for _, c := range s.crd.calls[h] {
				if c.resp != nil && c.resp.Status == 200 && c.body != nil {
					out = append(out, c)
				}
			}
		}
		return out
	}
	return []Test{
		{ID: "crd-4.01", Group: g, Name: "Coverage information system actions are returned for some hook", Run: func(t *T) {
			calls := all()
			if len(calls) == 0 {
				t.Skipf("no successful hook call")
			}
			if !slices.ContainsFunc(calls, func(c *hookCall) bool { return len(c.coverage) > 0 }) {
				t.Failf("CRD resp-26: no hook call returned a coverage-information system action")
			}
		}},
		{ID: "crd-4.02", Group: g, Name: "Coverage information demonstrates its must-support sub-extensions", Run: func(t *T) {
			seen := map[string]bool{}
			n := 0
			for _, c := range all() {
				for _, ci := range c.coverage {
					n++
					for _, u := range ci.URLs {
						seen[u] = true
					}
				}
			}
			if n == 0 {
				t.Skipf("no coverage information returned")
			}
			var missing []string
			for _, u := range check.CoverageSubURLs {
				if !seen[u] {
					missing = append(missing, u)
				}
			}
			// The four required ones fail; the rest depend on what the
			// inputs' orders provoke.
			var hard []string
			for _, u := range missing {
				if slices.Contains([]string{"coverage", "covered", "date", "coverage-assertion-id"}, u) {
					hard = append(hard, u)
				}
			}
			if len(hard) > 0 {
				t.Failf("CRD conf-5: no coverage-information extension carries %s", strings.Join(hard, ", "))
			}
			if len(missing) > len(hard) {
				t.Warnf("CRD conf-5: the answers to these inputs do not demonstrate the must-support sub-extensions %s (%d coverage-information extensions seen)", strings.Join(missing, ", "), n)
			}
		}},
		{ID: "crd-4.03", Group: g, Name: "A call without ext-billing-options is answered", Run: func(t *T) {
			for _, c := range all() {
				if !strings.Contains(string(mustJSON(c.request)), "ext-billing-options") {
					return
				}
			}
			t.Failf("CRD billopt-2: no successful call lacked the billing-options extension")
		}},
		{ID: "crd-4.04", Group: g, Name: "A technical failure at the EHR gives indeterminate coverage with reason technical", Run: func(t *T) {
			ins := s.inputGlob("crd/order-sign-*.json")
			if len(ins) == 0 {
				t.Skipf("no order-sign input")
			}
			call := s.prepareCall(t, ins[0])
			delete(call.request, "prefetch")
			obj(call.request["fhirAuthorization"])["access_token"] = "invalid"
			s.invoke(t, call)
			switch {
			case call.err != nil:
				t.Fatalf("POST %s: %v", call.url, call.err)
			case call.resp.Status != 200 || call.body == nil:
				t.Fatalf("CRD resp-43: with the EHR failing every query (HTTP 500) the service answered HTTP %d, want 200 with coverage information: %s", call.resp.Status, snippet(call.resp.Body))
			}
			if len(call.coverage) == 0 {
				t.Fatalf("CRD resp-43: with the EHR failing every query the answer carries no coverage information, want covered=indeterminate with reason technical")
			}
			for _, ci := range call.coverage {
				if ci.Covered != "indeterminate" || !slices.Contains(ci.Reasons, "technical") {
					t.Failf("CRD resp-43: with the EHR failing every query coverage information is covered=%q reasons=%v, want indeterminate with reason technical", ci.Covered, ci.Reasons)
				}
			}
		}},
	}
}

// checkRequestFields is the kit's required-fields test on an input.
func checkRequestFields(t *T, c *hookCall) {
	r := c.request
	if h := str(r, "hook"); h != c.hook || h == "" {
		t.Failf("CH-06: %s: hook is %q", c.input, h)
	}
	if str(r, "hookInstance") == "" {
		t.Failf("CH-06: %s: hookInstance is required", c.input)
	}
	if obj(r["context"]) == nil {
		t.Failf("CH-06: %s: context is required (an object)", c.input)
	}
	if fa := obj(r["fhirAuthorization"]); fa != nil {
		if str(r, "fhirServer") == "" {
			t.Failf("CH-06: %s: fhirServer is required with fhirAuthorization", c.input)
		}
		for _, k := range []string{"access_token", "token_type", "scope", "subject"} {
			if str(fa, k) == "" {
				t.Failf("CH-12: %s: fhirAuthorization.%s is required", c.input, k)
			}
		}
		if _, ok := check.Number(fa["expires_in"]); !ok {
			t.Failf("CH-12: %s: fhirAuthorization.expires_in must be an integer", c.input)
		}
	}
}

var contextFields = map[string][]string{
	"appointment-book":    {"userId", "patientId", "appointments"},
	"encounter-start":     {"userId", "patientId", "encounterId"},
	"encounter-discharge": {"userId", "patientId", "encounterId"},
	"order-select":        {"userId", "patientId", "selections", "draftOrders"},
	"order-sign":          {"userId", "patientId", "draftOrders"},
	"order-dispatch":      {"patientId", "performer"},
}

func checkContext(t *T, c *hookCall) {
	ctx := obj(c.request["context"])
	for _, k := range contextFields[c.hook] {
		if ctx[k] == nil {
			t.Failf("CDS Hooks %s context: %s has no %s", c.hook, c.input, k)
		}
	}
	if c.hook == "order-dispatch" && ctx["order"] == nil && ctx["dispatchedOrders"] == nil {
		t.Failf("CDS Hooks order-dispatch context: %s has neither dispatchedOrders (1.1) nor order (1.0)", c.input)
	}
	for _, k := range []string{"draftOrders", "appointments"} {
		if v, ok := ctx[k]; ok && str(obj(v), "resourceType") != "Bundle" {
			t.Failf("CDS Hooks %s context: %s.%s must be a Bundle", c.hook, c.input, k)
		}
	}
	if u := str(ctx, "userId"); u != "" {
		typ, _, _ := strings.Cut(u, "/")
		ok := typ == "Practitioner" || typ == "PractitionerRole" || c.hook == "appointment-book" && (typ == "Patient" || typ == "RelatedPerson")
		if !ok {
			t.Failf("CDS Hooks %s context: %s userId %q is not a Practitioner or PractitionerRole", c.hook, c.input, u)
		}
	}
}

var cardIndicators = []string{"info", "warning", "critical"}

// checkHookResponse checks one answer against CDS Hooks 2.0 (cards,
// suggestions, actions, links, CH-02) and the CRD card rules (the shared
// checker, conformance/check).
func checkHookResponse(t *T, c *hookCall) {
	for _, f := range check.HookResponse(c.body, c.hook, c.version, true) {
		t.Failf("%s: %s: %s", f.Rule, c.input, strings.TrimPrefix(f.Where+": "+f.Msg, ": "))
	}
}

// checkCoverageActions is the kit's coverage-information validation: the
// action is an update of the request resource, the resource conforms to
// its CRD profile and is unchanged but for the extension, each extension
// keeps the invariants q1–q9, and assertion ids follow resp-32.
func (s *session) checkCoverageActions(t *T, c *hookCall) {
	orig := originals(c.request, s.l.ehr)
	v := s.v
	if c.version == "2.2" {
		v = s.v22
	}
	checked := map[int]bool{}
	for _, ci := range c.coverage {
		if !checked[ci.Action] {
			checked[ci.Action] = true
			s.checkCoverageResource(t, fmt.Sprintf("%s: systemActions[%d] (%s)", c.input, ci.Action, ci.Ref), v, ci.Resource, orig[ci.Ref])
		}
	}
	_, fs := check.Coverage(c.body, check.CoverageOptions{Version: c.version, Hook: c.hook, Originals: orig})
	for _, f := range fs {
		msg := fmt.Sprintf("%s: %s: %s", f.Rule, c.input, strings.TrimPrefix(f.Where+": "+f.Msg, ": "))
		if f.Warn {
			t.Warnf("%s", msg)
		} else {
			t.Failf("%s", msg)
		}
	}
}

// checkCoverageResource validates the updated resource against its CRD
// profile (findings already in the client's copy are the input's, not the
// server's); check.Coverage compares it with the client's copy (resp-37).
func (s *session) checkCoverageResource(t *T, where string, v *profiles.Validator, res, orig map[string]any) {
	got := v.ValidateCRDResource(mustJSON(res))
	inherited := map[string]bool{}
	if orig != nil {
		for _, is := range v.ValidateCRDResource(mustJSON(orig)).Errors() {
			inherited[issueKey(is)] = true
		}
	}
	var own []profiles.Issue
	n := 0
	for _, is := range got.Errors() {
		if inherited[issueKey(is)] {
			n++
			continue
		}
		own = append(own, is)
	}
	if len(own) > 0 {
		t.Failf("CRD resp-47: %s: the updated resource does not conform to its CRD profile (%d errors the request's copy does not have):%s", where, len(own), issues(profiles.Result{Issues: own}, 6))
	}
	if n > 0 {
		t.Logf("%s: %d profile errors come from the request's own copy of the resource", where, n)
	}
	if orig == nil {
		t.Warnf("CRD resp-37: %s: the request holds no copy of the updated resource to compare with", where)
	}
}

// originals indexes the request's resources (context orders and
// appointments, prefetch, and the mock EHR's data) by Type/id.
func originals(req map[string]any, ehr *mockEHR) map[string]map[string]any {
	out := map[string]map[string]any{}
	ehr.mu.Lock()
	for k, r := range ehr.resources {
		out[k] = r
	}
	ehr.mu.Unlock()
	for k, r := range check.Originals(req) {
		if r != nil {
			out[k] = r
		}
	}
	return out
}

// inScope lists the orders (order-sign, order-select) or appointments
// (appointment-book) of a request: each needs coverage information.
func inScope(req map[string]any) []string { return check.InScope(req) }

// annotated reports whether a resource (or, for an Appointment, a request
// it is basedOn — CRD cards.md) got coverage information.
func annotated(c *hookCall, ref string) bool {
	targets := []string{ref}
	if strings.HasPrefix(ref, "Appointment/") {
		for _, e := range arr(obj(obj(c.request["context"])["appointments"])["entry"]) {
			res := obj(obj(e)["resource"])
			if "Appointment/"+str(res, "id") == ref {
				for _, b := range arr(res["basedOn"]) {
					targets = append(targets, str(obj(b), "reference"))
				}
			}
		}
	}
	for _, ci := range c.coverage {
		if slices.Contains(targets, ci.Ref) {
			return true
		}
	}
	return false
}

func annotatedRefs(c *hookCall) []string {
	var out []string
	for _, ci := range c.coverage {
		if !slices.Contains(out, ci.Ref) {
			out = append(out, ci.Ref)
		}
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

// issueKey identifies a validation finding regardless of which of the
// CRD profiles for the type it was reported against.
func issueKey(is profiles.Issue) string {
	d, _, _ := strings.Cut(is.Diagnostics, " (from ")
	return is.Expression + "|" + d
}
