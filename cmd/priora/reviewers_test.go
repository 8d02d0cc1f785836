package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/priora/priora/internal/testenv"
)

func TestReviewersCommand(t *testing.T) {
	dir := t.TempDir()
	getenv := env(map[string]string{"PRIORA_DATA_DIR": dir})
	tests := []struct {
		name    string
		args    []string
		stdin   string
		wantErr string // "" = success; "usage" = errUsage
		out     string
	}{
		{"add", []string{"add", "--username", "Nurse.Kim", "--password-stdin", "--npi", "1234567893", "--name", "Dana Kim, RN"}, "a long enough password\n", "", "reviewer nurse.kim added"},
		{"add without a name or NPI", []string{"add", "--username", "spec2", "--password-stdin"}, "another long password", "", "reviewer spec2 added"},
		{"add again", []string{"add", "--username", "nurse.kim", "--password-stdin"}, "a long enough password\n", "exists", ""},
		{"short password", []string{"add", "--username", "short", "--password-stdin"}, "tiny\n", "password: must be", ""},
		{"no password", []string{"add", "--username", "nopw", "--password-stdin"}, "", "no password", ""},
		{"password as a flag is not offered", []string{"add", "--username", "x1", "--password", "secret"}, "", "usage", ""},
		{"without --password-stdin", []string{"add", "--username", "x1"}, "a long enough password\n", "usage", ""},
		{"bad NPI", []string{"add", "--username", "x2", "--password-stdin", "--npi", "12"}, "a long enough password\n", "npi", ""},
		{"bad username", []string{"add", "--username", "no spaces", "--password-stdin"}, "a long enough password\n", "username", ""},
		{"disable", []string{"disable", "--username", "spec2"}, "", "", "reviewer spec2 disabled"},
		{"disable unknown", []string{"disable", "--username", "nobody"}, "", "no reviewer nobody", ""},
		{"add a physician", []string{"add", "--username", "dr.lee", "--password-stdin", "--role", "physician", "--name", "Sam Lee, MD"}, "a long enough password\n", "", "reviewer dr.lee added"},
		{"unknown role", []string{"add", "--username", "x3", "--password-stdin", "--role", "surgeon"}, "a long enough password\n", "role", ""},
		{"change a role", []string{"role", "--username", "spec2", "--role", "admin"}, "", "", "reviewer spec2 is now admin"},
		{"change to an unknown role", []string{"role", "--username", "spec2", "--role", "boss"}, "", "usage", ""},
		{"role of an unknown account", []string{"role", "--username", "nobody", "--role", "nurse"}, "", "no reviewer nobody", ""},
		{"list", []string{"list"}, "", "", "nurse.kim  nurse      Dana Kim, RN  1234567893  active"},
		{"list shows roles", []string{"list"}, "", "", "dr.lee     physician  Sam Lee, MD"},
		{"unknown subcommand", []string{"promote"}, "", "usage", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := reviewersCmd(context.Background(), tt.args, getenv, strings.NewReader(tt.stdin), &stdout, &stderr)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v\n%s", err, stderr.String())
			case tt.wantErr == "usage" && !errors.Is(err, errUsage):
				t.Fatalf("error %v, want the usage error", err)
			case tt.wantErr != "" && tt.wantErr != "usage" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
			}
			if !strings.Contains(stdout.String(), tt.out) {
				t.Errorf("output %q lacks %q", stdout.String(), tt.out)
			}
			if strings.Contains(stdout.String()+stderr.String()+errString(err), "long enough password") {
				t.Error("the password was echoed")
			}
		})
	}
	var out bytes.Buffer
	if err := reviewersCmd(context.Background(), []string{"list"}, getenv, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`spec2\s+admin\s+-\s+-\s+disabled`).MatchString(out.String()) {
		t.Errorf("list does not show spec2 disabled:\n%s", out.String())
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestReviewersCommandWhileServing adds an account while the server holds
// the embedded store, and signs in with it at once.
func TestReviewersCommandWhileServing(t *testing.T) {
	e := testenv.Start(t)
	getenv := env(map[string]string{"PRIORA_DATA_DIR": e.DataDir})
	var stdout, stderr bytes.Buffer
	if err := reviewersCmd(context.Background(), []string{"add", "--username", "live", "--password-stdin"}, getenv,
		strings.NewReader("a long enough password\n"), &stdout, &stderr); err != nil {
		t.Fatalf("add while serving: %v\n%s", err, stderr.String())
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(e.URL + "/desk/login")
	if err != nil {
		t.Fatal(err)
	}
	var page bytes.Buffer
	_, _ = page.ReadFrom(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page.String())
	if m == nil {
		t.Fatal("no CSRF token on the sign-in page")
	}
	resp, err = c.PostForm(e.URL+"/desk/login", url.Values{"csrf": {m[1]}, "username": {"live"}, "password": {"a long enough password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-in with the new account: %d, want 303", resp.StatusCode)
	}
}
