package store

import (
	"context"
	"database/sql"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// backend is one database engine under the Store: SQLite through
// database/sql, PostgreSQL through pgx. The Store's statements are written
// once for both; a backend supplies what differs.
type backend interface {
	// querier runs statements outside a transaction; the Store uses it to
	// read. Writes go through write.
	querier
	// write runs fn in a transaction, committed when fn returns nil and
	// rolled back otherwise. On SQLite, which has one writer at a time, the
	// transaction holds the write lock from its first statement.
	write(ctx context.Context, fn func(q querier) error) error
	// prepareMigrations runs first in the migration transaction: it makes
	// processes migrating the same database take turns, then creates the
	// schema_migrations table if it is missing.
	prepareMigrations(ctx context.Context, q querier) error
	// violation says which constraint, if any, err reports breaking.
	violation(err error) violation
	ping(ctx context.Context) error
	close() error
	dialect() string
}

// violation is the kind of constraint a failed statement broke.
type violation int

const (
	noViolation violation = iota
	uniqueViolation
	foreignKeyViolation
)

// querier runs SQL on a database or in a transaction. Placeholders are $1,
// $2, …; a missing row is sql.ErrNoRows from both drivers (pgx.ErrNoRows
// wraps it).
type querier interface {
	exec(ctx context.Context, query string, args ...any) (rowsAffected int64, err error)
	queryRow(ctx context.Context, query string, args ...any) row
	query(ctx context.Context, query string, args ...any) (rows, error)
}

// row is one result row, as both *sql.Row and pgx.Row are.
type row interface {
	Scan(dest ...any) error
}

// rows is a result set, as both *sql.Rows and pgx.Rows are, near enough.
type rows interface {
	row
	Next() bool
	Err() error
	Close()
}

// sqlQuerier is a querier over database/sql: a *sql.DB or a *sql.Tx.
type sqlQuerier struct {
	run interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
}

func (q sqlQuerier) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := q.run.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q sqlQuerier) queryRow(ctx context.Context, query string, args ...any) row {
	return q.run.QueryRowContext(ctx, query, args...)
}

func (q sqlQuerier) query(ctx context.Context, query string, args ...any) (rows, error) {
	r, err := q.run.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}

// sqlRows gives *sql.Rows pgx's Close, which returns nothing: an error
// reading the rows is reported by Err, which callers check.
type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

// pgQuerier is a querier over pgx: a *pgxpool.Pool or a pgx.Tx.
type pgQuerier struct {
	run interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	}
}

func (q pgQuerier) exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := q.run.Exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (q pgQuerier) queryRow(ctx context.Context, query string, args ...any) row {
	return q.run.QueryRow(ctx, query, args...)
}

func (q pgQuerier) query(ctx context.Context, query string, args ...any) (rows, error) {
	return q.run.Query(ctx, query, args...)
}
