package hooks

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
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
