//go:build unix

package gateway

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockSQLite takes the one-instance lock of the SQLite database at path: an
// exclusive flock on path + ".instance", held until release. SQLite keeps
// a single instance's state (its sessions, its caches) consistent only
// within one process, so a second `mcpgate serve` on the same file is
// refused with a message saying what to use instead.
func lockSQLite(path string) (release func(), err error) {
	name := path + ".instance"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := "another mcpgate"
		if b, rerr := os.ReadFile(name); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				holder = fmt.Sprintf("another mcpgate (pid %d)", pid)
			}
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s already serves the SQLite database %s; SQLite is for a single instance: to run several, use PostgreSQL (DATABASE_URL=postgres://…) and REDIS_URL", holder, path)
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
