package pas

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/priora/priora/coverage"
	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

// TestResponseWrittenFromPieces: for every PAS request in the test data,
// decided every way (approve, modify, pend with requests for information,
// deny, business errors), the Response Bundle written from its pieces is
// byte for byte what json.Marshal writes of the same Bundle (echoed
// resources stored compact or, as before, as the client sent them), and
// the items read for it (from the Claim or decoded once) are those
// json.Unmarshal reads from each item record.
func TestResponseWrittenFromPieces(t *testing.T) {
	files, _ := filepath.Glob("../testdata/pas/*/*.json")
	rules, _ := coverage.Sample()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	checked := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src, err := unwrapParameters(newSource(raw), "PAS request Bundle")
		if err != nil {
			continue
		}
		req, err := parseRequest(src)
		if err != nil {
			continue
		}
		req.resolveParties()
		for _, action := range []string{"", "approve", "modify", "pend", "deny"} {
			a := &store.Authorization{ID: "PA0123456789abcdef0123"}
			(&Service{}).index(a, req)
			for i, it := range req.claim.Item {
				rec := itemRecord(it, req.rawItems[i])
				rec.Decision = decide(rules, req.serviceContext(), req, it, a.ID, now)
				switch action {
				case "approve", "deny":
					rec.Decision.Action = action
				case "modify":
					rec.Decision.Action, rec.Decision.AuthorizedQuantity = "modify", 1
				case "pend":
					rec.Decision.Action, rec.Decision.RequestInfo = "pend", []string{"28633-6"}
				}
				a.Items = append(a.Items, rec)
			}
			in := responseInput{auth: a, claim: req.claim, claimItems: req.rawItems, claimFullURL: req.claimFullURL(),
				bundleID: req.bundle.Identifier, now: now, number: 1, authDays: 180}
			if action == "deny" {
				in.businessErrors = []businessError{{Code: "75", Followup: "C", Path: "Bundle.entry[0]", Element: "2010CA", Note: "not found"}}
			}
			rb, _ := responseBundleOf(in)
			got, err := writeBundle(rb)
			if err != nil {
				t.Fatalf("%s %s: %v", f, action, err)
			}
			want, err := json.Marshal(rb)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s %s: the Bundle written from pieces is not json.Marshal's, byte for byte", f, action)
			}
			// Echoed resources stored before they were kept compact.
			pretty := rb
			pretty.Entry = nil
			for _, e := range rb.Entry {
				if r, ok := e.Resource.(json.RawMessage); ok {
					var b bytes.Buffer
					_ = json.Indent(&b, r, "", "  ")
					e.Resource = json.RawMessage(b.Bytes())
				}
				pretty.Entry = append(pretty.Entry, e)
			}
			got, _ = writeBundle(pretty)
			if want, _ := json.Marshal(pretty); !bytes.Equal(got, want) {
				t.Errorf("%s %s: with pretty-printed echoed resources, not json.Marshal's byte for byte", f, action)
			}
			// Items: from the Claim, and decoded once without it.
			for _, in := range []responseInput{in, {}} {
				itemOf := in.itemDecoder()
				for _, rec := range a.Items {
					var want fhir.ClaimItem
					werr := json.Unmarshal([]byte(rec.ItemJSON), &want)
					got, gerr := itemOf(rec)
					if !reflect.DeepEqual(got, want) || (gerr == nil) != (werr == nil) {
						t.Errorf("%s: item %d read differently", f, rec.Sequence)
					}
				}
			}
			checked++
		}
	}
	if checked < 20 {
		t.Fatalf("only %d responses checked", checked)
	}
}

// TestMarshalledJSON: what compactJSON stores is recognized as json.Marshal
// output; white space between tokens and characters json.Marshal escapes
// are not.
func TestMarshalledJSON(t *testing.T) {
	for _, raw := range []string{
		`{"a": "b c"}`, `{"a":"x<y"}`, `{"a":"x&y"}`, "{\"a\":\"\u2028\"}", `{"a":["b" ,1]}`, "{\"a\":\n1}", `{"a":"\"}"}`,
	} {
		c := compactJSON([]byte(raw))
		if !marshalled([]byte(c)) {
			t.Errorf("compactJSON(%s) = %s: not recognized", raw, c)
		}
		if b, _ := json.Marshal(json.RawMessage(raw)); marshalled([]byte(raw)) != (string(b) == raw) {
			t.Errorf("marshalled(%s) = %v, json.Marshal writes %s", raw, marshalled([]byte(raw)), b)
		}
	}
}
