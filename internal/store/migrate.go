package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// migrationFiles holds the schema, one directory of migrations per dialect:
// migrations/<dialect>/NNNN_name.sql. An embed.FS is read-only.
//
//go:embed migrations
var migrationFiles embed.FS

// migration is one step of the schema.
type migration struct {
	version int    // NNNN; a dialect's versions run 1, 2, 3, …
	name    string // the file name
	sql     string // one or more statements
}

// dialectMigrations returns the embedded migrations of a dialect, in order.
func dialectMigrations(dialect string) ([]migration, error) {
	dir, err := fs.Sub(migrationFiles, path.Join("migrations", dialect))
	if err != nil {
		return nil, fmt.Errorf("%s migrations: %w", dialect, err)
	}
	return loadMigrations(dir)
}

// loadMigrations reads NNNN_name.sql files, which must number 1, 2, 3, …
// without a gap.
func loadMigrations(dir fs.FS) ([]migration, error) {
	names, err := fs.Glob(dir, "*.sql") // sorted
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	set := make([]migration, 0, len(names))
	for i, name := range names {
		number, _, _ := strings.Cut(name, "_")
		version, err := strconv.Atoi(number)
		if err != nil || version != i+1 {
			return nil, fmt.Errorf("migration %s: want a name starting %04d_", name, i+1)
		}
		text, err := fs.ReadFile(dir, name)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		set = append(set, migration{version: version, name: name, sql: string(text)})
	}
	return set, nil
}

// migrate brings the database up to the last version of set, applying the
// migrations above the database's version in one transaction, and returns
// the versions it applied. When the database is newer than set it fails and
// changes nothing: an older binary must not run on a schema it does not know.
func migrate(ctx context.Context, db backend, set []migration) (applied []int, err error) {
	known := len(set) // versions run 1…len(set)
	err = db.write(ctx, func(q querier) error {
		if err := db.prepareMigrations(ctx, q); err != nil {
			return fmt.Errorf("prepare schema_migrations: %w", err)
		}
		var current int
		if err := q.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if current > known {
			return fmt.Errorf("database schema version %d is newer than this mcpgate knows (%d): upgrade mcpgate", current, known)
		}
		for _, m := range set[current:] {
			if _, err := q.exec(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
			if _, err := q.exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, timestamp()); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
			applied = append(applied, m.version)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("migrate %s database: %w", db.dialect(), err)
	}
	return applied, nil
}
