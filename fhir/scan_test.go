package fhir

import (
	"strings"
	"testing"
)

func TestScan(t *testing.T) {
	lim := Limits{MaxDepth: 10, MaxValues: 100, MaxArray: 20, MaxEntries: 5}
	cases := []struct {
		name, body string
		kind       Kind
		expr, diag string
	}{
		{"plain", `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Claim","status":"active"}}]}`, -1, "", ""},
		{"escaped pair", `{"resourceType":"Patient","name":[{"text":"\ud83d\ude00 \u00e9"}]}`, -1, "", ""},
		{"strings with brackets", `{"resourceType":"Patient","id":"a{[\"]}:,"}`, -1, "", ""},
		{"duplicate member", `{"resourceType":"Bundle","entry":[{"resource":{"status":"active","status":"draft"}}]}`,
			Invalid, "Bundle.entry[0].resource.status", `"status" appears twice`},
		{"duplicate escaped", `{"resourceType":"Patient","id":"a","\u0069d":"b"}`, Invalid, "Patient.id", `"id" appears twice`},
		{"duplicate before resourceType", `{"a":1,"a":2,"resourceType":"Basic"}`, Invalid, "Basic.a", `"a" appears twice`},
		{"duplicate in a large object", `{"resourceType":"Basic",` + members(30) + `,"k7":0}`, Invalid, "Basic.k7", `"k7" appears twice`},
		{"lone high surrogate", `{"resourceType":"Patient","name":[{"text":"x\ud800y"}]}`, Invalid, "Patient.name[0].text", `\ud800 is an unpaired`},
		{"lone low surrogate", `{"resourceType":"Patient","id":"\uDC00"}`, Invalid, "Patient.id", `\udc00 is an unpaired`},
		{"high then non-low", `{"resourceType":"Patient","id":"\ud800\u0041"}`, Invalid, "Patient.id", "unpaired"},
		{"too many entries", `{"resourceType":"Bundle","entry":[{},{},{},{},{},{}]}`, TooLarge, "Bundle.entry", "PRIORA_MAX_ENTRIES"},
		{"long array", `{"resourceType":"Basic","x":[` + strings.Repeat("1,", 20) + `1]}`, TooLarge, "Basic.x", "PRIORA_MAX_ARRAY"},
		{"too many values", `{"resourceType":"Basic",` + members(120) + `}`, TooLarge, "", "PRIORA_MAX_JSON_VALUES"},
		{"too deep", strings.Repeat("[", 11) + strings.Repeat("]", 11), Invalid, "", "deeper than 10"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Scan([]byte(c.body), lim)
			if c.kind == -1 {
				if err != nil {
					t.Fatalf("Scan: %v", err)
				}
				return
			}
			if err == nil || KindOf(err) != c.kind {
				t.Fatalf("Scan = %v, want kind %v", err, c.kind)
			}
			is := IssuesOf(err)
			if len(is) != 1 || !strings.Contains(is[0].Diagnostics, c.diag) || (c.expr != "" && is[0].Expression != c.expr) {
				t.Errorf("issues %+v, want %q at %q", is, c.diag, c.expr)
			}
		})
	}
}

func members(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + itoa(i) + `":0`)
	}
	return b.String()
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
