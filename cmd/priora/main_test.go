package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// env is a getenv over m. Servers started in tests take any free port for
// their private metrics listener unless m names one (several run at once).
func env(m map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := m[k]; ok || k != "PRIORA_METRICS_ADDR" {
			return v
		}
		return "127.0.0.1:0"
	}
}

// TestServeAndStop runs the command as a user would: it starts on the
// embedded store, answers /readyz (probed by the healthcheck subcommand),
// and stops cleanly when its context ends.
func TestServeAndStop(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	vars := map[string]string{"PRIORA_DATA_DIR": t.TempDir(), "PRIORA_ADDR": addr, "PRIORA_INSECURE_DEV": "1"}
	go func() { done <- run(ctx, nil, env(vars), out, out) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var hc bytes.Buffer
		if err := run(context.Background(), []string{"healthcheck", "--url", "http://" + addr + "/readyz"}, env(nil), &hc, &hc); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never became ready:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("server did not stop")
	}
	logs := out.String()
	for _, want := range []string{"Priora configuration:", "PRIORA_DATA_DIR", "(embedded store)", `"msg":"priora listening"`, "draining in-flight requests"} {
		if !strings.Contains(logs, want) {
			t.Errorf("output lacks %q:\n%s", want, logs)
		}
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want string // error fragment, or "" for success
	}{
		{"defaults", nil, nil, ""},
		{"flag beats env", []string{"--addr", "127.0.0.1:9999"}, map[string]string{"PRIORA_ADDR": "nonsense"}, ""},
		{"bad addr", nil, map[string]string{"PRIORA_ADDR": "nonsense"}, "PRIORA_ADDR"},
		{"bad base url", nil, map[string]string{"PRIORA_BASE_URL": "ftp://x/y"}, "PRIORA_BASE_URL"},
		{"bad level", nil, map[string]string{"PRIORA_LOG_LEVEL": "loud"}, "PRIORA_LOG_LEVEL"},
		{"tiny body cap", nil, map[string]string{"PRIORA_MAX_BODY": "10"}, "PRIORA_MAX_BODY"},
		{"stray argument", []string{"extra"}, nil, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := loadConfig(tt.args, env(tt.vars), &stderr)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one mentioning %s", err, tt.want)
			}
		})
	}
}

func TestConfigPrintMasksSecrets(t *testing.T) {
	c, err := loadConfig(nil, env(map[string]string{"MONGODB_URI": "mongodb://app:s3cret@db.example:27017/?replicaSet=rs0"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c.print(&out)
	if strings.Contains(out.String(), "s3cret") {
		t.Errorf("printed configuration shows the password:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "db.example") {
		t.Errorf("printed configuration hides the host:\n%s", out.String())
	}
}
