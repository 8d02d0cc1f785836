package store

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// The embedded engine listens on a unix socket only, never on TCP: the
// socket file is mode 0600 inside the 0700 store directory, so only
// Priora's own user can reach the engine (which has no authentication of
// its own). A second Priora process on the same host connects to it with
// MONGODB_URI=mongodb://<the socket path, %2F-escaped>, as published in
// DataDir/store/priora.uri.

const socketName = "engine.sock"

// maxSocketPath is the longest socket path that fits sockaddr_un.sun_path
// (108 bytes on Linux, 104 on the BSDs and macOS, with its NUL).
const maxSocketPath = 100

// socketPath picks the engine's socket: DataDir/store/engine.sock, or, when
// that path is too long for a socket address or cannot be written in a
// MongoDB URI, engine.sock in a fresh private (0700) directory under the
// system's temporary directory, which sockDir names (removed at stop).
func socketPath(storeDir string) (sock, sockDir string, err error) {
	if err := os.Chmod(storeDir, 0o700); err != nil {
		return "", "", fmt.Errorf("store: data dir: %w", err)
	}
	sock = filepath.Join(storeDir, socketName)
	if len(sock) <= maxSocketPath && !strings.ContainsAny(sock, ":?#@,") {
		// A socket left by a process that died holds the name; the data
		// directory's lock says no engine runs here now.
		if err := os.Remove(sock); err != nil && !os.IsNotExist(err) {
			return "", "", fmt.Errorf("store: stale engine socket: %w", err)
		}
		return sock, "", nil
	}
	sockDir, err = os.MkdirTemp("", "priora-")
	if err != nil {
		return "", "", fmt.Errorf("store: socket directory: %w", err)
	}
	if err := os.Chmod(sockDir, 0o700); err != nil {
		os.RemoveAll(sockDir)
		return "", "", fmt.Errorf("store: socket directory: %w", err)
	}
	sock = filepath.Join(sockDir, socketName)
	if len(sock) > maxSocketPath || strings.ContainsAny(sock, ":?#@,") {
		os.RemoveAll(sockDir)
		return "", "", fmt.Errorf("store: no usable socket path: both %s and the temporary directory are too long; set TMPDIR to a short directory", storeDir)
	}
	return sock, sockDir, nil
}

// removeSocket removes the socket and the private directory made for it.
func removeSocket(sock, sockDir string) {
	_ = os.Remove(sock)
	if sockDir != "" {
		_ = os.RemoveAll(sockDir)
	}
}

// socketURI is the MongoDB URI of a unix socket: the driver reads a host
// ending in .sock as a socket path, query-unescaped.
func socketURI(sock string) string {
	return "mongodb://" + url.QueryEscape(sock) + "/"
}
