package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/testenv"
)

// The store's tests run every behaviour against a real SQLite file and a real
// PostgreSQL. PostgreSQL comes from MCPGATE_TEST_POSTGRES_URL, an
// administrator's URL: each test creates its own database there and drops it
// afterwards. scripts/postgres.sh starts a throwaway server and prints the
// line that sets it.

// forEachStore runs test, in parallel subtests named for the dialect, on a
// Store over a fresh database of each dialect.
func forEachStore(t *testing.T, test func(t *testing.T, s *Store)) {
	t.Helper()
	forEachDatabase(t, func(t *testing.T, databaseURL string) {
		test(t, openStore(t, databaseURL))
	})
}

// forEachDatabase runs test, in parallel subtests named for the dialect,
// with the DATABASE_URL of a fresh, empty database of each dialect.
func forEachDatabase(t *testing.T, test func(t *testing.T, databaseURL string)) {
	t.Helper()
	for _, dialect := range []string{DialectSQLite, DialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			test(t, newDatabase(t, dialect))
		})
	}
}

// newDatabase returns the DATABASE_URL of a fresh database, removed when the
// test ends.
func newDatabase(t *testing.T, dialect string) string {
	t.Helper()
	if dialect == DialectSQLite {
		return "sqlite:///" + filepath.Join(t.TempDir(), "mcpgate.db") // an absolute path: four slashes
	}
	return testenv.PostgresDatabase(t, "mcpgate_test")
}

// openStore opens databaseURL, closing it when the test ends.
func openStore(t *testing.T, databaseURL string) *Store {
	t.Helper()
	s, err := Open(t.Context(), databaseURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// countRows runs a SELECT COUNT(*) query.
func countRows(t *testing.T, q querier, query string, args ...any) int {
	t.Helper()
	var n int
	if err := q.queryRow(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestOpenReportsDialectAndPings(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		if want := strings.TrimPrefix(t.Name(), "TestOpenReportsDialectAndPings/"); s.Dialect() != want {
			t.Errorf("Dialect() = %q, want %q", s.Dialect(), want)
		}
		if err := s.Ping(t.Context()); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})
}

func TestBadDatabaseURLNamesTheSetting(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		says      string // a part of the message besides DATABASE_URL
	}{
		{"empty", "", "is empty"},
		{"not a URL", "mcpgate.db", "not a URL"},
		{"unknown scheme", "mysql://root@localhost/mcp", `scheme "mysql" is not supported`},
		{"SQLAlchemy driver", "postgresql+psycopg://admin:hunter2@db/mcp", "write postgresql://"},
		{"two slashes", "sqlite://mcpgate.db", "three slashes"},
		{"no file", "sqlite:///", "names no SQLite file"},
		{"in memory", "sqlite:///:memory:", "in-memory"},
		{"query", "sqlite:///./mcpgate.db?mode=ro", "no query"},
		{"no such directory", "sqlite:////nonexistent-mcpgate-dir/mcpgate.db", "open SQLite database"},
		{"bad port", "postgres://admin:hunter2@127.0.0.1:notaport/mcp", "cannot parse"},
		{"nobody listening", "postgres://admin:hunter2@127.0.0.1:1/mcp?sslmode=disable&connect_timeout=5", "connect to PostgreSQL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.url)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", tc.url)
			}
			msg := err.Error()
			if !strings.Contains(msg, "DATABASE_URL") || !strings.Contains(msg, tc.says) {
				t.Errorf("Open(%q) = %q, want it to name DATABASE_URL and say %q", tc.url, msg, tc.says)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("Open(%q) = %q: the message shows the password", tc.url, msg)
			}
		})
	}
}

func TestOpenSQLiteRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	openStore(t, "sqlite:///./mcpgate.db")
	if _, err := os.Stat(filepath.Join(dir, "mcpgate.db")); err != nil {
		t.Errorf("sqlite:///./mcpgate.db did not make mcpgate.db in the working directory: %v", err)
	}
}

func TestSQLiteConnectionSettings(t *testing.T) {
	s := openStore(t, newDatabase(t, DialectSQLite))
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"foreign_keys": "1",
		"busy_timeout": sqliteBusyTimeout,
	} {
		var got string
		if err := s.db.queryRow(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", pragma, err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %q, want %q", pragma, got, want)
		}
	}
}

func TestCancelledContextIsReported(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		u, err := s.CreateUpstream(t.Context(), sampleUpstream("crm"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err = s.GetUpstream(ctx, u.ID)
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "get upstream "+u.ID) {
			t.Errorf("GetUpstream with a cancelled context = %v, want context.Canceled wrapped with the upstream", err)
		}
	})
}
