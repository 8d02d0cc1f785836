package members_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/priora/priora/members"
	"github.com/priora/priora/store"
)

func TestParseMode(t *testing.T) {
	for in, want := range map[string]members.Mode{"": members.Auto, "auto": members.Auto, "ENFORCE": members.Enforce, " warn ": members.Warn, "off": members.Off} {
		if got, err := members.ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := members.ParseMode("on"); err == nil {
		t.Error("ParseMode(on) accepted")
	}
}

func TestViewAge(t *testing.T) {
	v := members.View{BirthDate: "2000-03-15"}
	for date, want := range map[string]int{"2026-03-14": 25, "2026-03-15": 26, "2026-12-01T10:00:00Z": 26, "": -1} {
		if got := v.Age(date); got != want {
			t.Errorf("Age(%q) = %d, want %d", date, got, want)
		}
	}
}

const testRoster = `{"resourceType":"Organization","id":"a","identifier":[{"system":"urn:payer","value":"A"}]}
{"resourceType":"Organization","id":"b","identifier":[{"system":"urn:payer","value":"B"}]}
{"resourceType":"Patient","id":"p1","name":[{"family":"Rivera","given":["Ana"]}],"birthDate":"1980-01-02"}
{"resourceType":"Coverage","id":"c1","status":"active","identifier":[{"type":{"coding":[{"code":"MB"}]},"system":"urn:mid","value":"M1"}],"subscriberId":"M1","relationship":{"coding":[{"code":"self"}]},"beneficiary":{"reference":"Patient/p1"},"payor":[{"reference":"Organization/a"}],"period":{"start":"2025-01-01","end":"2025-12-31"},"class":[{"type":{"coding":[{"code":"plan"}]},"value":"OLD"}]}
{"resourceType":"Coverage","id":"c1b","status":"active","identifier":[{"type":{"coding":[{"code":"MB"}]},"system":"urn:mid","value":"M1"}],"subscriberId":"M1","relationship":{"coding":[{"code":"self"}]},"beneficiary":{"reference":"Patient/p1"},"payor":[{"reference":"Organization/a"}],"period":{"start":"2026-01-01"},"class":[{"type":{"coding":[{"code":"plan"}]},"value":"NEW"}]}
{"resourceType":"Patient","id":"p2","name":[{"family":"Rivera","given":["Leo"]}],"birthDate":"2015-05-05"}
{"resourceType":"Coverage","id":"c2","status":"active","identifier":[{"type":{"coding":[{"code":"MB"}]},"system":"urn:mid","value":"M2"}],"subscriberId":"M1","relationship":{"coding":[{"code":"child"}]},"beneficiary":{"reference":"Patient/p2"},"payor":[{"reference":"Organization/a"}],"period":{"start":"2020-01-01"}}
{"resourceType":"Patient","id":"p3","name":[{"family":"Okafor","given":["Ben"]}],"birthDate":"1970-07-07"}
{"resourceType":"Coverage","id":"c3","status":"cancelled","subscriberId":"M3","beneficiary":{"reference":"Patient/p3"},"payor":[{"reference":"Organization/a"}],"period":{"start":"2020-01-01"}}
{"resourceType":"Coverage","id":"c3b","status":"active","subscriberId":"M3","beneficiary":{"reference":"Patient/p3"},"payor":[{"reference":"Organization/b"}],"period":{"start":"2020-01-01"}}
`

func TestCheck(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(ctx) })
	r := members.New(st, members.Auto, nil)
	if m, _ := r.Effective(ctx); m != members.Off {
		t.Errorf("auto with an empty roster: %s", m)
	}
	rep, err := r.Import(ctx, []members.Source{{Name: "t", Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(testRoster)), nil }}}, members.Options{})
	if err != nil || len(rep.Errors) > 0 || rep.Created != 3 || rep.Updated != 2 {
		t.Fatalf("import: %v %+v", err, rep)
	}
	if m, _ := r.Effective(ctx); m != members.Enforce {
		t.Errorf("auto after an import: %s", m)
	}
	servesA := func(system, value string) bool { return value == "A" }
	day := func(d string) []members.Span { return []members.Span{{Start: d, Path: "x"}} }
	tests := []struct {
		name   string
		q      members.Query
		status members.Status
		by     string
		plan   string
	}{
		{"member id with system", members.Query{MemberIDs: []members.ID{{System: "urn:mid", Value: "M1"}}, Dates: day("2026-02-01")}, members.Eligible, "member-id", "NEW"},
		{"member id in another system", members.Query{MemberIDs: []members.ID{{System: "urn:other", Value: "M1"}}, Dates: day("2026-02-01")}, members.NotFound, "", ""},
		{"bare member id, old period", members.Query{MemberIDs: []members.ID{{Value: "M1"}}, Dates: day("2025-06-01")}, members.Eligible, "member-id", "OLD"},
		{"before any coverage", members.Query{MemberIDs: []members.ID{{Value: "M1"}}, Dates: day("2024-06-01")}, members.NoCoverage, "member-id", ""},
		{"dependent by subscriber", members.Query{SubscriberID: "M1", Relationship: "child", Family: "RIVERA", Given: []string{"leo"}, BirthDate: "2015-05-05", Dates: day("2026-02-01")}, members.Eligible, "subscriber", ""},
		{"dependent with another birth date", members.Query{SubscriberID: "M1", Relationship: "child", Family: "Rivera", Given: []string{"Leo"}, BirthDate: "2015-05-06", Dates: day("2026-02-01")}, members.NotFound, "", ""},
		{"name differs", members.Query{MemberIDs: []members.ID{{Value: "M1"}}, Family: "Smith", Dates: day("2026-02-01")}, members.Mismatch, "member-id", "NEW"},
		{"birth date differs", members.Query{MemberIDs: []members.ID{{Value: "M1"}}, BirthDate: "1980-01-03", Dates: day("2026-02-01")}, members.Mismatch, "member-id", "NEW"},
		{"cancelled coverage, another payer's active", members.Query{MemberIDs: []members.ID{{Value: "M3"}}, Dates: day("2026-02-01")}, members.NoCoverage, "member-id", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.q.Serves = servesA
			res, err := r.Check(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tt.status || res.MatchedBy != tt.by || res.Plan(0) != tt.plan {
				t.Errorf("got %s by %q plan %q (%s); want %s by %q plan %q", res.Status, res.MatchedBy, res.Plan(0), res.Reason, tt.status, tt.by, tt.plan)
			}
		})
	}
	res, _ := r.Check(ctx, members.Query{MemberIDs: []members.ID{{Value: "M3"}}, Dates: day("2026-02-01"), Serves: servesA})
	if !res.OtherPayer {
		t.Errorf("M3 is covered by another payer: %+v", res)
	}
}
