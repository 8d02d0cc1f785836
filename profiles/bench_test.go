package profiles

import (
	"testing"
	"time"
)

// BenchmarkLoad measures Load: reading the embedded index (no definition
// is inflated until used).
func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		if _, err := Load(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidatePASRequest50KB validates a 52 KB Inferno $submit Bundle
// (13 entries) against the PAS 2.2.1 request Bundle profile, with warm
// caches. Run with -cpu 1 for the one-core figure.
func BenchmarkValidatePASRequest50KB(b *testing.B) {
	raw := readTestdata(b, "inferno-pas/must_support_pa_submit_request_payload.1.json")
	v := registry(b).NewValidator(Options{})
	v.ValidatePASRequest(raw) // compile the definitions it needs
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		v.ValidatePASRequest(raw)
	}
}

// BenchmarkValidatePASRequestIGExample validates the IG's 25 KB referral
// request Bundle.
func BenchmarkValidatePASRequestIGExample(b *testing.B) {
	raw := readTestdata(b, "pas-2.2.1/Bundle-ReferralAuthorizationBundleExample.json")
	v := registry(b).NewValidator(Options{})
	v.ValidatePASRequest(raw)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		v.ValidatePASRequest(raw)
	}
}

// TestColdStart loads the packages and validates a first (cold) PAS
// request, which compiles every definition it touches, and logs how long
// that took; BenchmarkLoad measures it.
func TestColdStart(t *testing.T) {
	raw := readTestdata(t, "inferno-pas/must_support_pa_submit_request_payload.1.json")
	start := time.Now()
	r, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	loaded := time.Since(start)
	if res := r.NewValidator(Options{}).ValidatePASRequest(raw); res.HasErrors() {
		t.Errorf("the kit's must-support request does not validate cold: %d errors", len(res.Errors()))
	}
	cold := time.Since(start)
	// A time budget is a benchmark's business (BenchmarkLoad), never a
	// test's: on a loaded machine it fails for no fault of the code.
	t.Logf("Load %v; Load + first PAS request validation %v", loaded, cold)
}
