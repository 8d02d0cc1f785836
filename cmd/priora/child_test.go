package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildOut  []byte
	buildDir  string
)

// TestMain removes the binary the child-process tests build.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildPriora builds this command once per test run, for tests that run
// Priora as a child process.
func buildPriora(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping a test that builds and runs Priora as a child process")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "priora-test-bin-")
		if buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "priora")
		buildOut, buildErr = exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, buildOut)
	}
	return builtBin
}

// child is a Priora process.
type child struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

// startChild starts the binary on addr and data and waits until /readyz
// answers 200.
func startChild(t *testing.T, bin, addr, data string, deadline time.Time, env ...string) *child {
	t.Helper()
	c := &child{log: &syncBuffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(bin, "serve")
	c.cmd.Env = append(os.Environ(),
		"PRIORA_INSECURE_DEV=1", "PRIORA_RATE_LIMIT=0", "PRIORA_LOG_LEVEL=warn",
		"PRIORA_ADDR="+addr, "PRIORA_DATA_DIR="+data, "MONGODB_URI=", "PRIORA_BASE_URL=", "PRIORA_METRICS_ADDR=127.0.0.1:0")
	c.cmd.Env = append(c.cmd.Env, env...) // later values win
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c
			}
		}
		select {
		case <-c.done:
			t.Fatalf("priora exited before it was ready:\n%s", c.log.String())
		case <-ctx.Done():
			c.kill(t)
			t.Fatalf("priora was not ready in time:\n%s", c.log.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *child) kill(t *testing.T) {
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Logf("kill: %v", err)
	}
	<-c.done
}

func (c *child) stop(t *testing.T) {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.kill(t)
	}
	if t.Failed() {
		t.Logf("priora's log:\n%s", c.log.String())
	}
}
