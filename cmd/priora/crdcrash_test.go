package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/priora/priora/internal/testenv"
)

// crashRules pend a physical therapy evaluation unless CRD said prior
// authorization is satisfied for it: a $submit approves it without review
// only when it finds the assertion it cites.
const crashRules = `
version: 1
rules:
  - id: pt-eval
    match: {codes: [{system: "http://www.ama-assn.org/go/cpt", codes: ["97161"]}]}
    decision: {action: pend, reason: needs review unless CRD said prior authorization is satisfied}
    crd: {covered: covered, paNeeded: satisfied}
`

// TestCRDCrashSafety runs Priora as a child process, sends it 300
// concurrent CRD order-sign calls, kills it with SIGKILL while they are in
// flight and restarts it on the same data directory. Every coverage
// assertion id an answered call handed out must then be found by the PAS
// $submit that cites it: the item is approved without review "per CRD
// coverage assertion <id>" instead of pended by the rule.
func TestCRDCrashSafety(t *testing.T) {
	const (
		total   = 300
		killAt  = 60
		workers = 8
	)
	deadline := time.Now().Add(300 * time.Second) // a guard against a hang, not a speed target
	bin := buildPriora(t)
	data := t.TempDir()
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(crashRules), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	base := "http://" + addr
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: total}}
	hook := orderSignFor97161(t)
	marker := []byte(`"hookInstance": "d5a80646-7ef5-4edf-ade9-72407ca28c76"`)
	if !bytes.Contains(hook, marker) {
		t.Fatal("the order-sign fixture has no hookInstance marker")
	}

	srv := startChild(t, bin, addr, data, deadline, "PRIORA_MAX_CONNS_PER_IP=0", "PRIORA_RULES="+rules)
	answers := make([][]byte, total)
	var acked atomic.Int64
	killed := make(chan struct{})
	var kill sync.Once
	var wg sync.WaitGroup
	for i := range total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := bytes.Replace(hook, marker, fmt.Appendf(nil, `"hookInstance": "crash-%012d"`, i), 1)
			st, ans, err := postJSON(client, base+"/cds-services/order-sign-crd", body)
			if err != nil || st != http.StatusOK {
				return // cut off by the kill (or refused: counted below)
			}
			answers[i] = ans
			if acked.Add(1) == killAt {
				kill.Do(func() { srv.kill(t); close(killed) })
			}
		}()
	}
	wg.Wait()
	kill.Do(func() { srv.kill(t); close(killed) })
	<-killed

	assertionID := regexp.MustCompile(`"coverage-assertion-id",\s*"valueString":\s*"([^"]+)"`)
	var ids []string
	for _, ans := range answers {
		if ans == nil {
			continue
		}
		m := assertionID.FindSubmatch(ans)
		if m == nil {
			t.Fatalf("an answered order-sign carries no coverage-assertion-id: %s", snip(ans))
		}
		ids = append(ids, string(m[1]))
	}
	t.Logf("before the kill: %d order-signs answered of %d", len(ids), total)
	if len(ids) < killAt || len(ids) == total {
		t.Fatalf("the kill did not land mid-load: %d answered", len(ids))
	}

	srv = startChild(t, bin, addr, data, deadline, "PRIORA_RULES="+rules)
	defer srv.stop(t)
	var next atomic.Int64
	var failures atomic.Int64
	wg = sync.WaitGroup{}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ids) || time.Now().After(deadline) {
					return
				}
				st, ans, err := post(client, base+"/fhir/Claim/$submit", submitCiting(t, ids[i], i))
				want := "CRD coverage assertion " + ids[i]
				if err != nil || st != http.StatusOK || !bytes.Contains(ans, []byte(want)) {
					if failures.Add(1) <= 10 {
						t.Errorf("assertion %s was acknowledged, but the $submit citing it answers %d %v without %q: %s", ids[i], st, err, want, snip(ans))
					}
				}
			}
		}()
	}
	wg.Wait()
	if time.Now().After(deadline) {
		t.Fatalf("checks did not finish in time")
	}
}

// orderSignFor97161 is the CRD IG's order-sign example with its
// ServiceRequest asking for a physical therapy evaluation (CPT 97161).
func orderSignFor97161(t *testing.T) []byte {
	var b map[string]any
	if err := json.Unmarshal(testenv.Fixture(t, "crd/ig/CRDServiceRequest.json"), &b); err != nil {
		t.Fatal(err)
	}
	for _, o := range b["context"].(map[string]any)["draftOrders"].(map[string]any)["entry"].([]any) {
		r := o.(map[string]any)["resource"].(map[string]any)
		if r["resourceType"] == "ServiceRequest" {
			r["code"] = map[string]any{"coding": []any{map[string]any{"system": "http://www.ama-assn.org/go/cpt", "code": "97161"}}}
		}
	}
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// submitCiting is the PAS kit's approval request for CPT 97161 for the
// member CRD answered for, its ServiceRequest carrying the CRD
// coverage-information with assertion id, under Bundle.identifier n.
func submitCiting(t *testing.T, id string, n int) []byte {
	var b map[string]any
	if err := json.Unmarshal(testenv.Fixture(t, "pas/kit/approval_pa_submit_request_payload.json"), &b); err != nil {
		t.Fatal(err)
	}
	b["identifier"].(map[string]any)["value"] = fmt.Sprintf("crd-crash-%d", n)
	for _, en := range b["entry"].([]any) {
		res := en.(map[string]any)["resource"].(map[string]any)
		switch res["resourceType"] {
		case "Claim":
			for _, it := range res["item"].([]any) {
				it.(map[string]any)["productOrService"] = map[string]any{"coding": []any{map[string]any{"system": "http://www.ama-assn.org/go/cpt", "code": "97161"}}}
			}
		case "Coverage":
			res["subscriberId"] = "888009335" // the member CRD answered for
		case "ServiceRequest":
			var exts []any
			for _, x := range res["extension"].([]any) {
				if x.(map[string]any)["url"] != "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information" {
					exts = append(exts, x)
				}
			}
			res["extension"] = append(exts, map[string]any{
				"url": "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information",
				"extension": []any{
					map[string]any{"url": "coverage", "valueReference": map[string]any{"reference": "Coverage/InsuranceExample"}},
					map[string]any{"url": "covered", "valueCode": "covered"},
					map[string]any{"url": "pa-needed", "valueCode": "satisfied"},
					map[string]any{"url": "date", "valueDate": "2026-11-01"},
					map[string]any{"url": "coverage-assertion-id", "valueString": id},
					map[string]any{"url": "satisfied-pa-id", "valueString": "SAT-1"},
				},
			})
		}
	}
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func postJSON(c *http.Client, url string, body []byte) (int, []byte, error) {
	return postAs(c, url, body, "application/json")
}
