package outbound

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	strict, _ := New(Config{})
	dev, _ := New(Config{InsecureDev: true})
	allow, err := New(Config{Allow: []string{"10.20.0.0/16", "ehr.internal:8080", "fd00::1"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		p      *Policy
		url    string
		refuse bool
	}{
		{"public https", strict, "https://ehr.example.org/fhir", false},
		{"public http", strict, "http://ehr.example.org/fhir", true},
		{"ftp", strict, "ftp://ehr.example.org/", true},
		{"relative", strict, "/fhir", true},
		{"user info", strict, "https://u:p@ehr.example.org/", true},
		{"loopback", strict, "https://127.0.0.1:8080/admin/audit", true},
		{"loopback other", strict, "https://127.9.9.9/", true},
		{"localhost name", strict, "https://localhost:8080/", true},
		{"localhost subdomain", strict, "https://a.localhost/", true},
		{"IPv6 loopback", strict, "https://[::1]/", true},
		{"IPv4-mapped loopback", strict, "https://[::ffff:127.0.0.1]/", true},
		{"IPv4-mapped private", strict, "https://[::ffff:10.0.0.1]/", true},
		{"NAT64 of private", strict, "https://[64:ff9b::a00:1]/", true},
		{"6to4", strict, "https://[2002:a00:1::]/", true},
		{"RFC 1918", strict, "https://192.168.1.10/", true},
		{"RFC 4193", strict, "https://[fd12::1]/", true},
		{"link-local metadata", strict, "https://169.254.169.254/latest/meta-data", true},
		{"IPv6 link-local", strict, "https://[fe80::1%25eth0]/", true},
		{"CGNAT", strict, "https://100.64.0.1/", true},
		{"unspecified", strict, "https://0.0.0.0/", true},
		{"this network", strict, "https://0.1.2.3/", true},
		{"multicast", strict, "https://224.0.0.1/", true},
		{"broadcast", strict, "https://255.255.255.255/", true},
		{"public literal", strict, "https://8.8.8.8/", false},
		{"dev: loopback http", dev, "http://127.0.0.1:9999/notify", false},
		{"dev: localhost http", dev, "http://localhost:9999/notify", false},
		{"dev: private still refused", dev, "https://10.0.0.1/", true},
		{"dev: public http refused", dev, "http://ehr.example.org/", true},
		{"allow: CIDR", allow, "http://10.20.3.4:8080/fhir", false},
		{"allow: outside CIDR", allow, "https://10.21.3.4/fhir", true},
		{"allow: host:port", allow, "http://ehr.internal:8080/fhir", false},
		{"allow: other port", allow, "https://ehr.internal:9090/fhir", false}, // a DNS name: checked when dialled
		{"allow: single address", allow, "https://[fd00::1]/", false},
		{"allow: loopback still refused", allow, "https://127.0.0.1/", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.CheckURL(tt.url)
			if (err != nil) != tt.refuse {
				t.Fatalf("CheckURL(%s) = %v, want refused %v", tt.url, err, tt.refuse)
			}
			if err != nil && !errors.Is(err, ErrRefused) {
				t.Errorf("error %v does not wrap ErrRefused", err)
			}
		})
	}
}

func TestNewRejectsBadAllowEntries(t *testing.T) {
	for _, e := range []string{"10.0.0.0/33", "ehr.internal", "http://x:1/"} {
		if _, err := ParseAllow("10.0.0.0/8," + e); err == nil {
			t.Errorf("allow entry %q accepted", e)
		}
	}
	got, err := ParseAllow(" 10.0.0.0/8 , ehr.internal:443 ,")
	if err != nil || len(got) != 2 {
		t.Errorf("ParseAllow = %v, %v", got, err)
	}
}

// TestDialTimeCheck: a DNS name that resolves to loopback passes CheckURL
// but is refused when dialled; the allow list and dev mode let it through.
func TestDialTimeCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		io.WriteString(w, strings.Repeat("x", 100))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	byName := "http://localhost:" + port + "/"

	strict, _ := New(Config{Allow: []string{"10.0.0.0/8"}})
	for _, u := range []string{srv.URL, byName, "https://localhost:" + port} {
		// The name is resolved, then its address refused.
		if _, err := strict.Client(0, 1<<20).Get(u); !errors.Is(err, ErrRefused) {
			t.Errorf("strict policy dialled loopback for %s: err = %v", u, err)
		}
	}

	dev, _ := New(Config{InsecureDev: true})
	c := dev.Client(0, 50)
	resp, err := c.Get(byName)
	if err != nil {
		t.Fatalf("dev policy: %v", err)
	}
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, ErrTooLarge) {
		t.Errorf("reading 100 bytes with a 50-byte bound: err = %v", err)
	}
	resp.Body.Close()
	resp, err = c.Get(srv.URL + "/redirect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("redirect followed: status %d", resp.StatusCode)
	}

	listed, _ := New(Config{Allow: []string{"127.0.0.1/32"}})
	resp, err = listed.Client(0, 1<<20).Get(srv.URL)
	if err != nil {
		t.Fatalf("allow-listed loopback: %v", err)
	}
	resp.Body.Close()
	named, _ := New(Config{Allow: []string{"localhost:" + port}})
	resp, err = named.Client(0, 1<<20).Get(byName)
	if err != nil {
		t.Fatalf("allow-listed host:port: %v", err)
	}
	resp.Body.Close()
	if _, err := named.Client(0, 1<<20).Get(srv.URL); !errors.Is(err, ErrRefused) {
		t.Errorf("host:port entry let another name through: %v", err)
	}
}

func TestSpecial(t *testing.T) {
	for _, s := range []string{"1.1.1.1", "2606:4700:4700::1111", "93.184.216.34"} {
		if why := special(netip.MustParseAddr(s)); why != "" {
			t.Errorf("%s refused as %s", s, why)
		}
	}
}
