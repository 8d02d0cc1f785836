package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// One embedded engine per data directory: two engines on the same SQLite
// files would corrupt FerretDB's metadata. The process that runs the engine
// holds an exclusive flock on DataDir/store/priora.lock and writes the
// engine's MongoDB URI to DataDir/store/priora.uri, so that a second process
// on the same data directory (such as `priora clients`) connects to the
// running engine instead of starting its own.

const (
	lockFile = "priora.lock"
	uriFile  = "priora.uri"
)

// ErrLocked means another process runs the embedded engine on the data
// directory. RunningURI tells where it answers.
var ErrLocked = errors.New("store: the data directory is in use by another Priora process")

// dirLock is a held data-directory lock.
type dirLock struct {
	f   *os.File
	dir string
}

// lockDataDir takes the data directory's exclusive lock without waiting.
func lockDataDir(dir string) (*dirLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("store: lock %s: %w", dir, err)
	}
	return &dirLock{f: f, dir: dir}, nil
}

// publish records the running engine's URI for other processes.
func (l *dirLock) publish(uri string) error {
	tmp := filepath.Join(l.dir, uriFile+".tmp")
	if err := os.WriteFile(tmp, []byte(uri+"\n"), 0o600); err != nil {
		return fmt.Errorf("store: write uri file: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(l.dir, uriFile)); err != nil {
		return fmt.Errorf("store: write uri file: %w", err)
	}
	return nil
}

// release removes the URI file and drops the lock.
func (l *dirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = os.Remove(filepath.Join(l.dir, uriFile))
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	_ = l.f.Close()
	l.f = nil
}

// startEmbeddedLocked starts the embedded engine under the data directory's
// lock; ErrLocked when another process runs it.
func startEmbeddedLocked(dataDir string, start func() (*embedded, error)) (*embedded, error) {
	if dataDir == "" {
		return start()
	}
	dir, err := filepath.Abs(filepath.Join(dataDir, "store"))
	if err != nil {
		return nil, fmt.Errorf("store: data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: data dir: %w", err)
	}
	l, err := lockDataDir(dir)
	if err != nil {
		return nil, err
	}
	e, err := start()
	if err != nil {
		l.release()
		return nil, err
	}
	if err := l.publish(e.uri); err != nil {
		e.cancel()
		<-e.done
		l.release()
		return nil, err
	}
	e.unlock = l.release
	return e, nil
}

// RunningURI returns the MongoDB URI of the embedded engine that another
// process runs on dataDir. ok is false when no process holds the data
// directory (then Open may start the engine itself).
func RunningURI(dataDir string) (uri string, ok bool, err error) {
	dir, err := filepath.Abs(filepath.Join(dataDir, "store"))
	if err != nil {
		return "", false, fmt.Errorf("store: data dir: %w", err)
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	l, err := lockDataDir(dir)
	switch {
	case err == nil:
		l.f.Close() // closing drops the lock; the URI file, if any, is stale
		return "", false, nil
	case !errors.Is(err, ErrLocked):
		return "", false, err
	}
	b, err := os.ReadFile(filepath.Join(dir, uriFile))
	if err != nil {
		return "", false, fmt.Errorf("store: the data directory is locked but its uri file cannot be read: %w", err)
	}
	return strings.TrimSpace(string(b)), true, nil
}
