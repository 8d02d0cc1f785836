package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/priora/priora/coverage"
)

// rulesStatus reads GET /admin/rules.
func rulesStatus(t *testing.T, base string) (st struct {
	Version  string `json:"version"`
	Reloads  int    `json:"reloads"`
	Failures int    `json:"failedReloads"`
}) {
	t.Helper()
	resp, err := http.Get(base + "/admin/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// SIGHUP reloads the rules file and never ends the server; an invalid file
// keeps the running rules and the log says why.
func TestSIGHUPReloadsRules(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildPriora(t)
	deadline := time.Now().Add(90 * time.Second)
	addr, base := freeAddr(t), ""
	base = "http://" + addr
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	sample := coverage.SampleYAML()
	if err := os.WriteFile(rules, sample, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startChild(t, bin, addr, t.TempDir(), deadline, "PRIORA_RULES="+rules, "PRIORA_LOG_LEVEL=info")
	defer srv.stop(t)
	first := rulesStatus(t, base)

	// waitFor polls the status until cond holds (the signal is handled
	// asynchronously by the server).
	waitFor := func(what string, cond func(v string, reloads, failures int) bool) {
		t.Helper()
		for {
			st := rulesStatus(t, base)
			if cond(st.Version, st.Reloads, st.Failures) {
				return
			}
			select {
			case <-srv.done:
				t.Fatalf("priora exited after SIGHUP:\n%s", srv.log.String())
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not seen in time", what)
			}
		}
	}

	changed := bytes.Replace(sample, []byte(`label: "2026.12-sample"`), []byte(`label: "2026.12-b"`), 1)
	if err := os.WriteFile(rules, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("reload", func(v string, n, _ int) bool { return n == 1 })
	if st := rulesStatus(t, base); !strings.HasPrefix(st.Version, "2026.12-b@") || st.Version == first.Version {
		t.Errorf("version after reload %q (was %q)", st.Version, first.Version)
	}

	if err := os.WriteFile(rules, append(changed, []byte("\n  - id: broken\n    match: {codes: [{system: http://example.org/typo, codes: [x]}]}\n    decision: {action: approve}\n    crd: {goldCard: [\"1234567890\"]}\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("refused reload", func(_ string, _, f int) bool { return f == 1 })
	if st := rulesStatus(t, base); !strings.HasPrefix(st.Version, "2026.12-b@") {
		t.Errorf("the running rules changed after an invalid reload: %q", st.Version)
	}
	log := srv.log.String()
	for _, want := range []string{"reload refused", "not a code system Priora knows", "not an NPI"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if resp, err := http.Get(base + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("server not answering after SIGHUP: %v", err)
	}
}
