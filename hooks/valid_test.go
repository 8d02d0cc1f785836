package hooks

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestValidJSON checks validJSON against json.Valid on hand-picked cases,
// on every fixture and on thousands of random corruptions of them.
func TestValidJSON(t *testing.T) {
	cases := []string{
		``, ` `, `{}`, `[]`, `""`, `0`, `-0`, `01`, `1.`, `.5`, `1e`, `1e+`, `1E-2`, `-`, `1.5e10`, `true`, `tru`, `nul`, `null `,
		`{"a":1,}`, `[1,]`, `{"a" 1}`, `{"a":}`, `{,}`, `[,1]`, `{"a":1}}`, `"\u12"`, `"\u12G4"`, `"\x"`, "\"a\tb\"", `"\/\b\f\n\r\t\\\""`,
		`{"a":[1,{"b":null}],"c":"\u00e9"}`, `[[[[]]]]`, `{"a":1} {}`, "\xff", `"` + "\xff" + `"`, ` [1 , 2 ] `,
	}
	files, _ := filepath.Glob("../testdata/crd/*/*.json")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, string(b))
	}
	r := rand.New(rand.NewPCG(1, 2))
	n := len(cases)
	for i := 0; i < 5000; i++ {
		b := []byte(cases[r.IntN(n)])
		if len(b) == 0 {
			continue
		}
		for k := 0; k < 1+r.IntN(3); k++ {
			const alphabet = "{}[]\",:0-.eE\\ tfnu1a"
			b[r.IntN(len(b))] = alphabet[r.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, c := range cases {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%.80q) = %v, json.Valid = %v", c, got, want)
		}
	}
}

// TestDecodeRequestMatchesUnmarshal checks the fast decoding of hook calls
// against json.Unmarshal on every CDS Hooks fixture and on variants with
// the unusual shapes it hands over to json.Unmarshal.
func TestDecodeRequestMatchesUnmarshal(t *testing.T) {
	files, _ := filepath.Glob("../testdata/crd/*/*.json")
	more, _ := filepath.Glob("../conformance/inputs/crd/*.json")
	var bodies [][]byte
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	for _, s := range []string{
		`{"hook":"order-sign","Hook":"x","context":{"patientId":"1"}}`,
		`{"hook":"order-sign","context":{"patientId":"1","PatientId":"2"}}`,
		`{"hook":"order-sign","context":{"patientId":"1"},"context":{"userId":"u"}}`,
		`{"hook":1}`,
		`{"hook":"a\u0062","context":{"draftOrders":null,"fulfillmentTasks":[{"a":1},2],"performer":null}}`,
		`{"hook":"x","context":{"draftOrders":{"resourceType":"Bundle","entry":[{"fullUrl":"u","resource":{"id":"1"}}]}}}`,
		`{"hook":"x","context":{"draftOrders":[]}}`,
		`{"hook":"x","prefetch":{"a":null,"a":{}}}`,
		`{"hook":"x","prefetch":[]}`,
		`{"hook":"x","extension":{"k\u0065y":1}}`,
		`null`, `[]`, `{"hook":"x",}`,
	} {
		bodies = append(bodies, []byte(s))
	}
	for _, b := range bodies {
		var fast, slow Request
		errFast := decodeRequest(b, &fast)
		errSlow := json.Unmarshal(b, &slow)
		if (errFast == nil) != (errSlow == nil) || (errFast != nil && errFast.Error() != errSlow.Error()) {
			t.Errorf("%.60s: errors %v / %v", b, errFast, errSlow)
			continue
		}
		if errFast == nil && !reflect.DeepEqual(fast, slow) {
			t.Errorf("%.60s: decoded differently:\nfast %+v\nslow %+v", b, fast, slow)
		}
	}
}
