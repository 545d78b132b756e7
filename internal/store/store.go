// Package store is mcpgate's persistence: the registered upstreams, what each
// one offers (its catalogue) and the stored global passthrough list, in SQLite
// or PostgreSQL. It is the only package that speaks SQL.
//
// [Open] takes the DATABASE_URL setting and brings the schema up to date with
// the migrations embedded in the binary, one ordered set per dialect. The two
// dialects share every statement the Store runs (both take $1 placeholders
// and ON CONFLICT, and both drivers scan into the same Go types); what
// differs — the driver, how writers take turns, the migrations — is in
// sqlite.go and postgres.go.
//
// Values are stored as they are given: the store validates nothing the
// registry validates (transports, auth types, header names), never sees a
// credential in plaintext, and keeps an upstream's passthrough list exactly
// as set — nil (inherit the global list) apart from empty (forward nothing),
// deviation D5.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNotFound is returned, wrapped, when the upstream asked for does not
// exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned, wrapped, when a write would break a rule another
// writer got to first: a name or slug another upstream already has, or an
// upstream that changed since the caller read it. The message says which.
var ErrConflict = errors.New("conflict")

// The dialects, as [Store.Dialect] reports them.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// Store is mcpgate's database. It is safe for concurrent use; Close it when
// done.
type Store struct {
	db backend
}

// Open opens the database that databaseURL (the DATABASE_URL setting) names
// and applies the schema migrations it lacks, all in one transaction. The
// accepted forms are:
//
//	sqlite:///./mcpgate.db        a SQLite file, relative to the working directory
//	sqlite:////var/lib/mcpgate.db a SQLite file, absolute path
//	postgres://user:pass@host:5432/dbname?sslmode=disable   (or postgresql://)
//
// Open fails, changing nothing, when the database's schema is newer than this
// binary knows. Processes opening the same database at once apply each
// migration once.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	db, err := openBackend(ctx, databaseURL)
	if err != nil {
		return nil, err
	}
	set, err := dialectMigrations(db.dialect())
	if err != nil {
		db.close()
		return nil, err
	}
	if _, err := migrate(ctx, db, set); err != nil {
		db.close()
		return nil, err
	}
	return &Store{db: db}, nil
}

// The accepted DATABASE_URL forms, for error messages.
const databaseURLForms = "sqlite:///relative/path.db, sqlite:////absolute/path.db, postgres://user@host:5432/dbname or postgresql://…"

// openBackend connects to the database databaseURL names, without migrating.
func openBackend(ctx context.Context, databaseURL string) (backend, error) {
	switch {
	case strings.HasPrefix(databaseURL, "sqlite:///"):
		return openSQLite(ctx, strings.TrimPrefix(databaseURL, "sqlite:///"))
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		return openPostgres(ctx, databaseURL)
	}
	// Name only the scheme: the rest of the value may hold a password.
	scheme, _, isURL := strings.Cut(databaseURL, "://")
	switch {
	case strings.TrimSpace(databaseURL) == "":
		return nil, fmt.Errorf("DATABASE_URL is empty; use one of %s", databaseURLForms)
	case !isURL:
		return nil, fmt.Errorf("DATABASE_URL is not a URL; use one of %s", databaseURLForms)
	case strings.HasPrefix(scheme, "postgres") && strings.Contains(scheme, "+"):
		// SQLAlchemy's postgresql+psycopg:// names a Python driver.
		return nil, fmt.Errorf("DATABASE_URL scheme %q names a Python driver; write postgresql:// (accepted: %s)", scheme, databaseURLForms)
	case scheme == "sqlite":
		return nil, fmt.Errorf("DATABASE_URL: a SQLite URL has three slashes before a relative path and four before an absolute one (accepted: %s)", databaseURLForms)
	}
	return nil, fmt.Errorf("DATABASE_URL scheme %q is not supported; use one of %s", scheme, databaseURLForms)
}

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.close(); err != nil {
		return fmt.Errorf("close %s database: %w", s.db.dialect(), err)
	}
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.ping(ctx); err != nil {
		return fmt.Errorf("ping %s database: %w", s.db.dialect(), err)
	}
	return nil
}

// Dialect reports which database the Store uses: [DialectSQLite] or
// [DialectPostgres].
func (s *Store) Dialect() string { return s.db.dialect() }

// timestamp is the time the Store records: UTC, cut to the microsecond,
// because PostgreSQL keeps microseconds and a value read back must equal the
// one written.
func timestamp() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
