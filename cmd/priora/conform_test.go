package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/store"
)

// TestConform runs `priora conform` against a test Priora for a few
// groups and checks its output, reports and exit status.
func TestConform(t *testing.T) {
	e := testenv.Start(t, testenv.WithoutResponseChecks())
	dir := t.TempDir()
	reports := []string{filepath.Join(dir, "r.json"), filepath.Join(dir, "r.xml"), filepath.Join(dir, "r.html")}
	var out, errOut bytes.Buffer
	args := []string{"conform", "--base", e.URL, "--only", "pas-2.1,pas-4,crd-1",
		"--report", reports[0], "--report", reports[1] + "," + reports[2]}
	if err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("conform: %v\n%s%s", err, out.String(), errOut.String())
	}
	for _, want := range []string{"PAS 2.1 Successful Approval", "PASS  pas-2.1.1.04", "PASS  pas-4.01", "SKIP  crd-1.01", "0 failed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	var rep struct {
		Counts  struct{ Pass, Fail int }
		Results []struct{ ID, Status string }
	}
	b, err := os.ReadFile(reports[0])
	if err != nil || json.Unmarshal(b, &rep) != nil || rep.Counts.Pass == 0 || rep.Counts.Fail != 0 {
		t.Errorf("JSON report: %v %+v", err, rep.Counts)
	}
	var junit struct {
		Tests  int `xml:"tests,attr"`
		Suites []struct {
			Name string `xml:"name,attr"`
		} `xml:"testsuite"`
	}
	if b, err = os.ReadFile(reports[1]); err != nil || xml.Unmarshal(b, &junit) != nil || junit.Tests != len(rep.Results) || len(junit.Suites) != 3 {
		t.Errorf("JUnit report: %v tests=%d suites=%d, want %d tests in 3 suites", err, junit.Tests, len(junit.Suites), len(rep.Results))
	}
	if b, err = os.ReadFile(reports[2]); err != nil || !bytes.Contains(b, []byte("<style>")) || !bytes.Contains(b, []byte("pas-2.1.1.04")) || bytes.Contains(b, []byte("<link")) {
		t.Errorf("HTML report: %v, want a self-contained page listing the tests", err)
	}
	// The suite's requests are test data (HTEST): a production server keeps
	// them out of its work queue.
	all, err := e.App.Store.ReviewQueue(context.Background(), store.ReviewFilter{Test: "include"})
	if err != nil || len(all) == 0 {
		t.Fatalf("no requests stored by the suite: %v", err)
	}
	for _, a := range all {
		if !a.Test {
			t.Errorf("request %s from priora conform is not marked as test data", a.ID)
		}
	}
}

// TestConformFails exits non-zero when a test fails: here nothing
// listens at the base URL.
func TestConformFails(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"conform", "--base", "http://127.0.0.1:1", "--only", "pas-4"}, func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "2 of 2 tests failed") {
		t.Errorf("got %v, want 2 of 2 tests failed\n%s", err, out.String())
	}
	for _, args := range [][]string{{"conform"}, {"conform", "--base", "http://x", "--report", "r.txt"}, {"conform", "--base", "http://x", "--client-key", "k.json"}} {
		if err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut); err != errUsage {
			t.Errorf("%v: got %v, want usage error", args, err)
		}
	}
}
