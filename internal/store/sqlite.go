package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteBusyTimeout is how long, in milliseconds, a SQLite statement waits
// for a lock another process holds before it fails with SQLITE_BUSY.
const sqliteBusyTimeout = "5000"

// sqliteBackend is SQLite through the pure-Go driver modernc.org/sqlite.
type sqliteBackend struct {
	sqlQuerier
	db *sql.DB
	// writer is a one-slot semaphore. SQLite allows one writer at a time, so
	// this process's writers queue here rather than spin on SQLITE_BUSY;
	// writers in other processes are waited for by busy_timeout.
	writer chan struct{}
}

// openSQLite opens the SQLite file at path (relative to the working
// directory unless absolute), creating it when missing.
func openSQLite(ctx context.Context, path string) (*sqliteBackend, error) {
	switch {
	case path == "":
		return nil, fmt.Errorf("DATABASE_URL names no SQLite file; use one of %s", databaseURLForms)
	case path == ":memory:":
		// Each pooled connection would get its own empty database.
		return nil, fmt.Errorf("DATABASE_URL: in-memory SQLite is not supported; name a file (%s)", databaseURLForms)
	case strings.ContainsAny(path, "?#"):
		return nil, fmt.Errorf("DATABASE_URL: a SQLite URL takes no query or fragment; name a file (%s)", databaseURLForms)
	}
	// The driver applies these to every connection it opens, busy_timeout
	// first. _txlock=immediate makes every transaction BEGIN IMMEDIATE, so
	// a read-then-write transaction holds the write lock from the start and
	// cannot fail on upgrading it. TIMESTAMP columns are written in the one
	// format the driver reads back as time.Time.
	params := url.Values{
		"_busy_timeout": {sqliteBusyTimeout},
		"_journal_mode": {"WAL"},
		"_foreign_keys": {"1"},
		"_txlock":       {"immediate"},
		"_time_format":  {"sqlite"},
	}
	db, err := sql.Open("sqlite", path+"?"+params.Encode())
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: open SQLite database %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("DATABASE_URL: open SQLite database %s: %w", path, err)
	}
	return &sqliteBackend{sqlQuerier: sqlQuerier{db}, db: db, writer: make(chan struct{}, 1)}, nil
}

func (b *sqliteBackend) write(ctx context.Context, fn func(q querier) error) error {
	select {
	case b.writer <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-b.writer }()
	tx, err := b.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(sqlQuerier{tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// prepareMigrations needs no lock of its own: the migration transaction is
// BEGIN IMMEDIATE, so it already holds the database's one write lock.
func (b *sqliteBackend) prepareMigrations(ctx context.Context, q querier) error {
	_, err := q.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TIMESTAMP NOT NULL
	)`)
	return err
}

func (b *sqliteBackend) violation(err error) violation {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return noViolation
	}
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return uniqueViolation
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return foreignKeyViolation
	}
	return noViolation
}

func (b *sqliteBackend) ping(ctx context.Context) error { return b.db.PingContext(ctx) }
func (b *sqliteBackend) close() error                   { return b.db.Close() }
func (b *sqliteBackend) dialect() string                { return DialectSQLite }
