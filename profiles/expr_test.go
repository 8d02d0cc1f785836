package profiles

import (
	"slices"
	"testing"
)

const exprBundle = `{"resourceType":"Bundle","type":"collection","entry":[
 {"fullUrl":"urn:uuid:c1","resource":{"resourceType":"Claim","id":"c1","patient":{"reference":"Patient/p1"},
  "item":[{"sequence":1,"quantity":{"value":3}}]}},
 {"fullUrl":"urn:uuid:p1","resource":{"resourceType":"Patient","id":"p1","birthDate":"1960-05-01","gender":"female"}},
 {"fullUrl":"urn:uuid:q1","resource":{"resourceType":"QuestionnaireResponse","questionnaire":"http://example.org/Questionnaire/osa",
  "item":[{"linkId":"other","answer":[{"valueInteger":2}]},{"linkId":"ahi","answer":[{"valueInteger":22}]}]}}]}`

func TestExprEnvironment(t *testing.T) {
	root, err := ParseResource([]byte(exprBundle))
	if err != nil {
		t.Fatal(err)
	}
	claimX, err := CompileExpr("entry.resource.ofType(Claim)", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := claimX.Eval(root, Env{})
	if err != nil || len(r.Nodes()) != 1 {
		t.Fatalf("claim: %v %v", r, err)
	}
	claim := r.Nodes()[0]
	qr := func(args []string) []*Node {
		x, _ := CompileExpr("entry.resource.ofType(QuestionnaireResponse).where(questionnaire = %q)", []string{"q"}, nil)
		r, _ := x.Eval(root, Env{Vars: map[string][]Value{"q": {StringValue(args[0])}}})
		return r.Nodes()
	}
	env := Env{
		Vars:  map[string][]Value{"claim": NodeValues(claim), "today": {StringValue("2026-12-06")}},
		Funcs: map[string]ExprFunc{"questionnaireResponse": qr},
	}
	vars, funcs := []string{"claim", "today"}, []string{"questionnaireResponse"}
	for _, tc := range []struct {
		expr     string
		want     string // true, false, empty
		evidence []string
	}{
		{"%claim.patient.resolve().birthDate <= %today - 18 years", "true", []string{"Bundle.entry[1].resource.birthDate"}},
		{"%claim.patient.resolve().birthDate <= %today - 80 years", "false", nil},
		{"%claim.patient.resolve().gender = 'male'", "false", []string{"Bundle.entry[1].resource.gender"}},
		{"%questionnaireResponse('http://example.org/Questionnaire/osa').item.where(linkId='ahi').answer.value >= 15", "true",
			[]string{"Bundle.entry[2].resource.item[1].answer[0].valueInteger"}},
		{"questionnaireResponse('http://example.org/Questionnaire/none').item.where(linkId='ahi').answer.value >= 15", "empty", nil},
		{"%claim.item.quantity.value <= 4", "true", nil},
		{"%today + 1 month = '2027-01-06'", "true", nil},
	} {
		x, err := CompileExpr(tc.expr, vars, funcs)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		r, err := x.Eval(root, env)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		got := "empty"
		if b, ok := r.Bool(); ok {
			got = map[bool]string{true: "true", false: "false"}[b]
		}
		if got != tc.want {
			t.Errorf("%s = %s, want %s", tc.expr, got, tc.want)
		}
		for _, e := range tc.evidence {
			if !slices.Contains(r.Evidence, e) {
				t.Errorf("%s: evidence %v lacks %s", tc.expr, r.Evidence, e)
			}
		}
	}
	for _, bad := range []string{"%nope = 1", "unknownFn()", "%claim.item.where(", "1 +"} {
		if _, err := CompileExpr(bad, vars, funcs); err == nil {
			t.Errorf("%s compiled", bad)
		}
	}
}
