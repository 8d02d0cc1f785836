package store

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEmbeddedEngineListensOnPrivateSocket is #13's finding 4: the
// embedded engine listened on a loopback TCP port without authentication
// and logged it, so any local user could read PHI and the signing key.
// Now it answers on a 0600 unix socket only, and nothing logs an address.
func TestEmbeddedEngineListensOnPrivateSocket(t *testing.T) {
	before := listeningTCP(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	data := t.TempDir()
	st, err := Open(context.Background(), Options{DataDir: data, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())

	uri, _ := st.Embedded()
	sock := filepath.Join(data, "store", socketName)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatalf("no engine socket in the data directory: %v", err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("engine socket %s: mode %v, want a socket with 0600", sock, fi.Mode())
	}
	if !strings.Contains(uri, "engine.sock") || strings.Contains(uri, "127.0.0.1") {
		t.Errorf("engine URI %q is not the socket", uri)
	}
	published, err := os.ReadFile(filepath.Join(data, "store", uriFile))
	if err != nil || strings.TrimSpace(string(published)) != uri {
		t.Errorf("published URI %q (%v), want %q", published, err, uri)
	}
	if after := listeningTCP(t); len(after) > len(before) {
		t.Errorf("the process listens on %d TCP ports after starting the engine, %d before", len(after), len(before))
	}
	if bytes.Contains(logs.Bytes(), []byte("127.0.0.1")) || bytes.Contains(logs.Bytes(), []byte("engine.sock")) {
		t.Errorf("the engine's address is logged:\n%s", logs.String())
	}

	// A second client reaches the engine through the published URI.
	other, err := Open(context.Background(), Options{URI: uri, Database: "priora"})
	if err != nil {
		t.Fatalf("connect through the socket URI: %v", err)
	}
	other.Close(context.Background())
}

// TestEmbeddedEngineLongDataDir: a data directory too long for a socket
// address gets its socket in a private directory, removed at stop.
func TestEmbeddedEngineLongDataDir(t *testing.T) {
	data := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	st, err := Open(context.Background(), Options{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	sock := st.embedded.sock
	dir := st.embedded.sockDir
	if dir == "" || len(sock) > maxSocketPath {
		t.Fatalf("socket %q (private dir %q) for a long data directory", sock, dir)
	}
	di, err := os.Stat(dir)
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("private socket directory %s: %v %v, want 0700", dir, di.Mode(), err)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket %s: %v, want 0600", sock, err)
	}
	if err := st.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.Close(context.Background())
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("private socket directory %s left behind after stop", dir)
	}
}

// listeningTCP lists this process's listening TCP sockets (by inode), from
// /proc.
func listeningTCP(t *testing.T) []string {
	t.Helper()
	mine := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 9 && fields[3] == "0A" && mine[fields[9]] { // 0A = LISTEN
				out = append(out, fields[9])
			}
		}
	}
	return out
}
