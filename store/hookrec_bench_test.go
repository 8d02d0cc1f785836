package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/priora/priora/bench"
	"github.com/priora/priora/store"
)

// sampleHookCall is a record as an order-sign with full prefetch and two
// orders leaves it.
func sampleHookCall(n int64) *store.HookCall {
	id := store.HookCallID(fmt.Sprintf("%032x", n))
	now := time.Now().UTC()
	rec := &store.HookCall{ID: id, Received: now, Service: "order-sign-crd", Hook: "order-sign",
		HookInstance: "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", Tenant: "default", Client: "ehr-1", Version: "2.2",
		Status: 200, Outcome: "ok", Orders: 2, Cards: 2, Fetched: 0, RequestID: "01JDX3W1Q4", Source: "10.1.2.3",
		DecodeMicros: 120, PrefetchMicros: 3, DecideMicros: 80, TotalMicros: 260}
	for i := range 2 {
		a := store.CoverageAssertion{ID: store.AssertionID(id, i+1), Tenant: "default", Client: "ehr-1",
			Hook: "order-sign", HookInstance: rec.HookInstance, FHIRServer: "https://ehr.example.org/fhir",
			Order: fmt.Sprintf("ServiceRequest/sr-%d", i), Codes: []store.AssertionCode{{System: "http://www.ama-assn.org/go/cpt", Code: "72148", Display: "MRI lumbar spine without contrast"}},
			MemberID: "M123456", PatientID: "pat-1", Coverage: "Coverage/cov-1", PayerIDs: []string{"urn:oid:2.16.840.1.113883.4.4|12-3456789"},
			Covered: "covered", PANeeded: "auth-needed", DocNeeded: []string{"clinical"}, RuleID: "lumbar-mri", RulesVersion: "sample@1a2b3c",
			Reasons: []string{"policy"}, Date: now, Expires: now.Add(30 * 24 * time.Hour), Quantity: 1, PeriodStart: "2026-12-10"}
		rec.Made = append(rec.Made, a)
		rec.Assertions = append(rec.Assertions, a.ID)
	}
	return rec
}

// BenchmarkRecordHookCall: the durable write of one call record, with the
// concurrency of a loaded server (group commit).
func BenchmarkRecordHookCall(b *testing.B) {
	s, err := store.Open(context.Background(), store.Options{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	parallelCPU(b, 32, func(n int64) error {
		return s.RecordHookCall(context.Background(), sampleHookCall(n), true)
	})
}

// parallelCPU runs op (numbered from 1) with par goroutines per CPU and
// reports the process's CPU time per op (all threads: the store's work
// included, and steady on a busy machine).
func parallelCPU(b *testing.B, par int, op func(n int64) error) {
	var n atomic.Int64
	b.SetParallelism(par)
	cpu0 := bench.ProcessCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(n.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64((bench.ProcessCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// TestHookCallRecordForms: a call record reads back whole, assertions
// included, both as written now (packed) and as written by the version
// before (every field a document field), through each reader: the
// assertion lookup PAS makes, the metrics' list and the audit trail.
func TestHookCallRecordForms(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	packed := sampleHookCall(1)
	if err := s.RecordHookCall(ctx, packed, true); err != nil {
		t.Fatal(err)
	}
	old := sampleHookCall(2)
	old.Received = old.Received.Add(time.Second)
	if _, err := s.DB().Collection("hookCalls").InsertOne(ctx, old); err != nil {
		t.Fatal(err)
	}
	for _, want := range []*store.HookCall{packed, old} {
		for _, a := range want.Made {
			got, err := s.CoverageAssertion(ctx, a.ID)
			if err != nil {
				t.Fatalf("assertion %s: %v", a.ID, err)
			}
			if got.Order != a.Order || got.MemberID != a.MemberID || got.RuleID != a.RuleID || !got.Expires.Equal(a.Expires.Truncate(time.Millisecond)) {
				t.Errorf("assertion %s read back as %+v, want %+v", a.ID, got, a)
			}
		}
	}
	calls, err := s.HookCalls(ctx, packed.Received.Add(-time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 {
		t.Fatalf("HookCalls: %d records, want 2", len(calls))
	}
	for i, want := range []*store.HookCall{packed, old} {
		got := calls[i]
		if got.ID != want.ID || got.Hook != want.Hook || got.Status != want.Status || got.Orders != want.Orders ||
			got.TotalMicros != want.TotalMicros || len(got.Assertions) != 2 || got.Source != want.Source || len(got.Made) != 0 {
			t.Errorf("HookCalls[%d] = %+v, want the record of %s without its assertions", i, got, want.ID)
		}
	}
	audit, err := s.Audit(ctx, store.AuditFilter{Client: "ehr-1", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range audit {
		if r.Type == "cds-hook" && (r.ID == packed.ID || r.ID == old.ID) {
			n++
			if r.Source != "10.1.2.3" || r.RequestID != "01JDX3W1Q4" || r.Status != 200 {
				t.Errorf("audit record %+v lost the call's facts", r)
			}
		}
	}
	if n != 2 {
		t.Errorf("audit lists %d of the 2 hook calls: %+v", n, audit)
	}
}
