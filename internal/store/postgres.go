package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationLockKey is the PostgreSQL advisory lock the migration transaction
// holds, so that processes opening the same database at once migrate one
// after the other. Any fixed number works; this one is "mcpgate1" in ASCII.
const migrationLockKey int64 = 0x6d63706761746531

// postgresBackend is PostgreSQL through a pgx connection pool.
type postgresBackend struct {
	pgQuerier
	pool *pgxpool.Pool
}

// openPostgres connects to the PostgreSQL database databaseURL names.
func openPostgres(ctx context.Context, databaseURL string) (*postgresBackend, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err) // pgx hides the password
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: open PostgreSQL database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("DATABASE_URL: connect to PostgreSQL: %w", err)
	}
	return &postgresBackend{pgQuerier: pgQuerier{pool}, pool: pool}, nil
}

// write runs fn at PostgreSQL's default isolation, read committed. The
// statements that need more say so themselves: an UPDATE that checks the
// version it changes, an INSERT … ON CONFLICT.
func (b *postgresBackend) write(ctx context.Context, fn func(q querier) error) error {
	return pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error { return fn(pgQuerier{tx}) })
}

func (b *postgresBackend) prepareMigrations(ctx context.Context, q querier) error {
	// Held until the transaction ends, and scoped to this database.
	if _, err := q.exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	_, err := q.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    BIGINT PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL
	)`)
	return err
}

func (b *postgresBackend) violation(err error) violation {
	var e *pgconn.PgError
	if !errors.As(err, &e) {
		return noViolation
	}
	switch e.Code {
	case "23505": // unique_violation
		return uniqueViolation
	case "23503": // foreign_key_violation
		return foreignKeyViolation
	}
	return noViolation
}

func (b *postgresBackend) ping(ctx context.Context) error { return b.pool.Ping(ctx) }
func (b *postgresBackend) dialect() string                { return DialectPostgres }

func (b *postgresBackend) close() error {
	b.pool.Close()
	return nil
}
