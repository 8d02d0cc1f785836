package testenv

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// WaitFor polls cond until it holds, failing t when d passes first; what
// names the awaited state in the failure. It is for states another
// process or goroutine reaches (a delivery, a lease): poll what a user
// would see, never sleep a fixed time instead. Under the race detector d
// is multiplied by raceFactor.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	d *= raceFactor
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SubmitApproval submits the PAS test kit's approval request under a fresh
// Bundle identifier (so that it starts a new authorization) and returns
// the authorization's id.
func (e *Env) SubmitApproval(bundleID string) string {
	e.T.Helper()
	var m map[string]any
	if err := json.Unmarshal(Fixture(e.T, "pas/kit/approval_pa_submit_request_payload.json"), &m); err != nil {
		e.T.Fatal(err)
	}
	m["identifier"].(map[string]any)["value"] = bundleID
	body, _ := json.Marshal(m)
	r := e.Post("/fhir/Claim/$submit", body)
	if r.Status != http.StatusOK {
		e.T.Fatalf("$submit: %d %s", r.Status, r.Body)
	}
	return AuthorizationID(e.T, r.Body)
}

// AuthorizationID reads Priora's authorization id (the ClaimResponse
// identifier of system urn:priora:authorization) from a PAS response
// Bundle.
func AuthorizationID(t testing.TB, response []byte) string {
	t.Helper()
	var b struct {
		Entry []struct {
			Resource struct {
				Identifier []struct{ System, Value string } `json:"identifier"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(response, &b); err != nil || len(b.Entry) == 0 {
		t.Fatalf("not a PAS response: %v", err)
	}
	for _, id := range b.Entry[0].Resource.Identifier {
		if id.System == "urn:priora:authorization" {
			return id.Value
		}
	}
	t.Fatalf("the ClaimResponse has no urn:priora:authorization identifier")
	return ""
}
