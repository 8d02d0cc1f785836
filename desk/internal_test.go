package desk

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/priora/priora/pas"
	"github.com/priora/priora/store"
)

func TestPeriod(t *testing.T) {
	now := time.Date(2026, 5, 17, 12, 0, 0, 0, time.UTC)
	month := func(y int, m time.Month) time.Time { return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		query    string
		from, to time.Time
		bad      bool
	}{
		{"", month(2025, 6), month(2026, 6), false},
		{"from=2026-01", month(2026, 1), month(2026, 6), false},
		{"from=2026-01&to=2026-03", month(2026, 1), month(2026, 4), false},
		{"to=2025-12", month(2025, 1), month(2026, 1), false},
		{"from=2026-03&to=2026-03", month(2026, 3), month(2026, 4), false},
		{"from=2026-04&to=2026-03", time.Time{}, time.Time{}, true},
		{"from=March", time.Time{}, time.Time{}, true},
		{"to=2026-13", time.Time{}, time.Time{}, true},
		{"from=2010-01", time.Time{}, time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.query)
			from, to, err := period(q, now)
			if tt.bad {
				if err == nil {
					t.Errorf("no error for %q", tt.query)
				}
				return
			}
			if err != nil || !from.Equal(tt.from) || !to.Equal(tt.to) {
				t.Errorf("period = %v, %v, %v; want %v, %v", from, to, err, tt.from, tt.to)
			}
		})
	}
}

func TestHookMetrics(t *testing.T) {
	t0 := time.Date(2026, 4, 30, 23, 0, 0, 0, time.UTC)
	var calls []store.HookCall
	for i := 1; i <= 10; i++ {
		calls = append(calls, store.HookCall{Hook: "order-sign", Received: t0.Add(time.Duration(i) * 10 * time.Minute), TotalMicros: int64(i) * 1000, Status: 200})
	}
	calls[9].Status = 500
	calls = append(calls, store.HookCall{Hook: "order-sign", Received: t0.Add(48 * time.Hour), TotalMicros: 1}) // after the period
	m := hookMetrics(calls, t0.Add(24*time.Hour))
	want := HookFigures{Calls: 10, Failed: 1, P50Ms: 5, P90Ms: 9, P95Ms: 10, P99Ms: 10, MaxMs: 10}
	if diff := cmp.Diff(want, m.All, cmp.AllowUnexported(HookFigures{})); diff != "" {
		t.Errorf("all (-want +got):\n%s", diff)
	}
	var months []string
	for _, f := range m.ByMonth {
		months = append(months, f.Month+":"+itoa(f.Calls))
	}
	if diff := cmp.Diff([]string{"2026-04:5", "2026-05:5"}, months); diff != "" {
		t.Errorf("by month (-want +got):\n%s", diff)
	}
}

func TestSortTasks(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tasks := []pas.TaskSummary{
		{ID: "A", Received: t0, DueAt: t0.Add(7 * 24 * time.Hour), Services: []string{"MRI"}},
		{ID: "B", Received: t0.Add(time.Hour), DueAt: t0.Add(73 * time.Hour), Expedited: true, Services: []string{"CT"}},
		{ID: "C", Received: t0.Add(2 * time.Hour), DueAt: t0.Add(74 * time.Hour), Expedited: true, Services: []string{"ambulance"}},
	}
	tests := []struct {
		key  string
		desc bool
		want string
	}{
		{"age", false, "ABC"},
		{"age", true, "CBA"},
		{"due", false, "BCA"},
		{"urgency", false, "BCA"},
		{"urgency", true, "ABC"},
		{"service", false, "CBA"},
		{"service", true, "ABC"},
	}
	for _, tt := range tests {
		t.Run(tt.key+map[bool]string{true: " desc"}[tt.desc], func(t *testing.T) {
			ts := append([]pas.TaskSummary(nil), tasks...)
			sortTasks(ts, tt.key, tt.desc)
			got := ""
			for _, x := range ts {
				got += x.ID
			}
			if got != tt.want {
				t.Errorf("order %s, want %s", got, tt.want)
			}
		})
	}
}

func TestViewHelpers(t *testing.T) {
	now := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct{ name, got, want string }{
		{"until future", until(now, now.Add(90*time.Minute)), "in 1 h"},
		{"until past", until(now, now.Add(-72*time.Hour)), "3 d"},
		{"since", since(now, now.Add(-30*time.Second)), "under a minute ago"},
		{"humanize", humanize("admissionDates"), "Admission dates"},
		{"official name first", nameOf(json.RawMessage(`[{"use":"usual","given":["Jo"]},{"use":"official","family":"Smith","given":["Joanne","M"],"prefix":["Ms"]}]`)), "Ms Joanne M Smith"},
		{"organization name", nameOf(json.RawMessage(`"Acme Health"`)), "Acme Health"},
		{"file name", fileName(`../../etc/passwd"; x=<y>`, 1, 0), ".._.._etc_passwd_ x_y_"},
		{"empty file name", fileName("...", 2, 1), "attachment-2-2"},
		{"hours", hours(ptr(0.5)), "30 min"},
		{"days", hours(ptr(60.0)), "2.5 days"},
		{"percent", percent(0.4567), "45.7 %"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestThrottle(t *testing.T) {
	th := newThrottle()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 4 {
		th.fail("a1", "u", t0.Add(time.Duration(i)*time.Second))
	}
	if r, _ := th.refused("a1", "u", t0.Add(5*time.Second)); r {
		t.Fatal("refused after 4 of 5 failures")
	}
	th.fail("a1", "u", t0.Add(5*time.Second))
	if r, why := th.refused("a1", "u", t0.Add(6*time.Second)); !r || why != "username" {
		t.Fatalf("not refused after 5 failures (%q)", why)
	}
	// The lock lasts 1 minute, then each failure doubles it.
	if r, _ := th.refused("a1", "u", t0.Add(66*time.Second)); r {
		t.Fatal("still locked after the first minute")
	}
	th.fail("a1", "u", t0.Add(66*time.Second))
	if r, _ := th.refused("a1", "u", t0.Add(66*time.Second+119*time.Second)); !r {
		t.Fatal("the second lock is not 2 minutes")
	}
	// Other addresses are not locked out of u, nor is a1 out of other names.
	if r, _ := th.refused("a2", "u", t0.Add(70*time.Second)); r {
		t.Fatal("another address is locked out")
	}
	if r, _ := th.refused("a1", "v", t0.Add(70*time.Second)); r {
		t.Fatal("the address is locked out of another username")
	}
	// Failures lapse after the window.
	if th.pair.failed("a1|u", t0.Add(66*time.Second+2*time.Minute+16*time.Minute)) {
		t.Fatal("failures did not lapse")
	}
	// Ten addresses failing once each put the username into a backoff that
	// holds for them, not for an address that has not failed.
	for i := range 10 {
		th.fail(fmt.Sprint("b", i), "w", t0)
	}
	if r, why := th.refused("b0", "w", t0.Add(time.Second)); !r || why != "account" {
		t.Fatalf("an address that failed on w during its backoff: %v %q", r, why)
	}
	if r, _ := th.refused("c", "w", t0.Add(time.Second)); r {
		t.Fatal("a clean address is refused w")
	}
	th.succeed("a1", "u")
	if th.pair.m["a1|u"] != nil || th.account.m["u"] != nil {
		t.Fatal("a success did not clear the failures")
	}
}

func TestSameOrigin(t *testing.T) {
	d := &Desk{origin: "https://pa.payer.example", secure: true}
	tests := []struct {
		name, host, origin, site string
		want                     bool
	}{
		{"base URL", "pa.payer.example", "https://pa.payer.example", "same-origin", true},
		{"same host", "internal:8443", "https://internal:8443", "", true},
		{"other site", "pa.payer.example", "https://evil.example", "cross-site", false},
		{"other site without Sec-Fetch-Site", "pa.payer.example", "https://evil.example", "", false},
		{"plain http origin behind https", "pa.payer.example", "http://pa.payer.example", "", false},
		{"null origin, same-origin fetch", "pa.payer.example", "null", "same-origin", true},
		{"null origin, no fetch metadata", "pa.payer.example", "null", "", false},
		{"no origin, cross-site fetch", "pa.payer.example", "", "same-site", false},
		{"not a browser", "pa.payer.example", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "https://"+tt.host+"/desk/login", nil)
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.site != "" {
				r.Header.Set("Sec-Fetch-Site", tt.site)
			}
			if got := d.sameOrigin(r); got != tt.want {
				t.Errorf("sameOrigin = %v, want %v", got, tt.want)
			}
		})
	}
}
