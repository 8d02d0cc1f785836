package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/priora/priora/coverage"
)

func TestRulesCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, coverage.SampleYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"rules", "check", good}, os.Getenv, &out, &errb); err != nil {
		t.Fatalf("sample: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "ok,") {
		t.Errorf("sample check says %q", out.String())
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(`version: 1
rules:
  - id: a
    match: {codes: [{system: "http://example.org/typo", codes: ["1"]}]}
    criteria:
      all:
        - {id: c1, description: Broken, expression: "%claim.item.where("}
        - {id: c2, description: Unknown variable, expression: "%nurse.exists()"}
    decision: {action: deny, reasonCode: "ZZ"}
    crd: {goldCard: ["1234567890"]}
  - id: a
    match: {codes: [{system: "http://www.ama-assn.org/go/cpt", codes: ["99213"]}]}
    decision: {action: approve}
    colour: blue
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err := run(context.Background(), []string{"rules", "check", bad}, os.Getenv, &out, &errb)
	if !errors.Is(err, errInvalid) {
		t.Fatalf("bad file: err %v", err)
	}
	for _, want := range []string{
		"bad.yaml:3: rule 1 (a): match.codes system",
		"bad.yaml:7: rule 1 (a): criterion c1: expression does not compile",
		"bad.yaml:8: rule 1 (a): criterion c2: expression does not compile: unknown variable %nurse",
		`reason code "ZZ" is not in the shipped X12`,
		`crd.goldCard "1234567890" is not an NPI`,
		`id "a" is used twice`,
		"bad.yaml:14: field colour not found",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRulesTest(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, coverage.SampleYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"rules", "test", "--today", "2026-12-01", rules,
		"../../testdata/policies/cpap-osa-met.json", "../../testdata/policies/cpap-osa-unknown.json"}, os.Getenv, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
	}
	for _, want := range []string{
		"item 1 E0601: approve (A1) by rule cpap-osa",
		"met      ahi-15",
		"evidence: Bundle.entry[",
		"item 1 E0601: pend (A4) by rule cpap-osa",
		"unknown  sleep-study-report",
		"asks for: 28633-6",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
