package coverage

import (
	"testing"

	"github.com/priora/priora/members"
	"github.com/priora/priora/profiles"
)

// TestMemberVariable: %member is the roster's view of the member, so a
// criterion can read the plan or product line the payer has on file.
func TestMemberVariable(t *testing.T) {
	rules, err := Parse([]byte(`
version: 1
rules:
  - id: ma-only
    match: {codes: [{system: "http://www.ama-assn.org/go/cpt", codes: ["72148"]}]}
    criteria:
      all:
        - id: ma
          description: Medicare Advantage member on the roster
          expression: "%member.productLine = 'medicare-advantage'"
    onNotMet: pend
    decision: {action: approve}
`))
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := profiles.ParseResource([]byte(`{"resourceType":"Bundle","type":"collection"}`))
	if err != nil {
		t.Fatal(err)
	}
	svc := func(m *members.View) Service {
		return Service{Codes: []Code{{System: "http://www.ama-assn.org/go/cpt", Code: "72148"}}, Quantity: 1,
			Today: "2026-12-06", Member: m, Request: &Request{Bundle: []profiles.Value{bundle}}}
	}
	for _, tc := range []struct {
		name   string
		member *members.View
		want   Finding
	}{
		{"on the roster, Medicare Advantage", &members.View{Found: true, ProductLine: "medicare-advantage"}, Met},
		{"on the roster, commercial", &members.View{Found: true, ProductLine: "commercial"}, NotMet},
		{"no roster", nil, Unknown},
	} {
		out := rules.Decide(svc(tc.member))
		if len(out.Criteria) != 1 || out.Criteria[0].Finding != tc.want {
			t.Errorf("%s: criteria %+v, want %s", tc.name, out.Criteria, tc.want)
		}
	}
}
