package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// TestKeysNew: a key pair from `priora keys new` is registered with
// `priora clients add` and obtains an access token from a running server,
// for both algorithms SMART Backend Services names.
func TestKeysNew(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	vars := map[string]string{"PRIORA_DATA_DIR": filepath.Join(dir, "data"), "PRIORA_ADDR": addr}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, env(vars), out, out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	base := "http://" + addr
	waitReady(t, base, out)
	checkServedVersion(t, base)

	for _, alg := range []string{"ES384", "RS384"} {
		t.Run(alg, func(t *testing.T) {
			priv, pub := filepath.Join(dir, alg+".jwk"), filepath.Join(dir, alg+".jwks")
			var o, e bytes.Buffer
			if err := run(context.Background(), []string{"keys", "new", "--alg", alg, "--out", priv, "--jwks", pub}, env(vars), &o, &e); err != nil {
				t.Fatalf("keys new: %v %s", err, e.String())
			}
			if fi, err := os.Stat(priv); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("private key file: %v %v, want mode 0600", fi, err)
			}
			pubJSON, _ := os.ReadFile(pub)
			if bytes.Contains(pubJSON, []byte(`"d"`)) {
				t.Fatalf("the public JWK Set carries private key material: %s", pubJSON)
			}
			if err := run(context.Background(), []string{"keys", "new", "--alg", alg, "--out", priv, "--jwks", pub + ".2"}, env(vars), &o, &e); err == nil || !strings.Contains(err.Error(), "exists") {
				t.Errorf("keys new over an existing private key: err = %v, want a refusal", err)
			}
			id := "ehr-" + strings.ToLower(alg)
			if err := run(context.Background(), []string{"clients", "add", "--id", id, "--org", "org-" + id,
				"--jwks-file", pub, "--scopes", "system/Subscription.rs"}, env(vars), &o, &e); err != nil {
				t.Fatalf("clients add: %v %s", err, e.String())
			}
			assertion := signWithJWK(t, priv, jwt.MapClaims{"iss": id, "sub": id, "aud": base + "/auth/token",
				"exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix(), "jti": id + "-1"})
			r, err := http.PostForm(base+"/auth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Subscription.rs"},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Body.Close()
			var tr struct {
				AccessToken string `json:"access_token"`
			}
			if err := json.NewDecoder(r.Body).Decode(&tr); err != nil || r.StatusCode != 200 || tr.AccessToken == "" {
				t.Fatalf("token with the new key: status %d, err %v", r.StatusCode, err)
			}
		})
	}
}

// signWithJWK signs claims with the private JWK in file, the way an EHR
// would: alg and kid from the JWK.
func signWithJWK(t *testing.T, file string, claims jwt.MapClaims) string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m jwkset.JWKMarshal
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	k, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{Private: true}, jwkset.JWKValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(string(m.ALG)), claims)
	tok.Header["kid"] = m.KID
	s, err := tok.SignedString(k.Key())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitReady polls /readyz until the server answers.
func waitReady(t *testing.T, base string, out *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r, err := http.Get(base + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never became ready:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkServedVersion: /healthz and the CapabilityStatement report the
// version `priora version` prints.
func checkServedVersion(t *testing.T, base string) {
	t.Helper()
	var health struct{ Version string }
	getJSON(t, base+"/healthz", &health)
	var cs struct {
		Software struct{ Version string }
	}
	getJSON(t, base+"/fhir/metadata", &cs)
	if want := buildVersion(); health.Version != want || cs.Software.Version != want {
		t.Errorf("/healthz version %q, CapabilityStatement software.version %q, want %q", health.Version, cs.Software.Version, want)
	}
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	r, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if err := json.NewDecoder(r.Body).Decode(v); err != nil || r.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", u, r.StatusCode, err)
	}
}

// TestVersion: priora version and --version name the build.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var o bytes.Buffer
		if err := run(context.Background(), args, env(nil), &o, &o); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.HasPrefix(o.String(), "priora "+buildVersion()) || !strings.Contains(o.String(), "go1.") {
			t.Errorf("%v = %q", args, o.String())
		}
	}
	if v := buildVersion(); v == "" || v == "dev" {
		t.Errorf("buildVersion() = %q", v)
	}
}
