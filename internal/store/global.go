package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mcpgate/mcpgate/passthrough"
)

// GlobalPassthrough reads the stored global allowlist (spec §3): Exists is
// false when no row was ever written, and Names is nil when the row holds
// NULL. It is a passthrough.LoadStoredList.
func (s *Store) GlobalPassthrough(ctx context.Context) (passthrough.StoredList, error) {
	var column *string
	err := s.db.queryRow(ctx, `SELECT passthrough_headers FROM global_config WHERE id = 1`).Scan(&column)
	if errors.Is(err, sql.ErrNoRows) {
		return passthrough.StoredList{}, nil
	}
	if err != nil {
		return passthrough.StoredList{}, fmt.Errorf("read global passthrough headers: %w", err)
	}
	names, err := decodeNames(column)
	if err != nil {
		return passthrough.StoredList{}, fmt.Errorf("read global passthrough headers: %w", err)
	}
	list := passthrough.StoredList{Exists: true}
	if names != nil {
		list.Names = *names
	}
	return list, nil
}

// SetGlobalPassthrough writes the global allowlist, creating the row when
// absent; nil stores NULL.
func (s *Store) SetGlobalPassthrough(ctx context.Context, names *[]string) error {
	column, err := encodeNames(names)
	if err != nil {
		return fmt.Errorf("set global passthrough headers: %w", err)
	}
	err = s.db.write(ctx, func(q querier) error {
		_, err := q.exec(ctx, `INSERT INTO global_config (id, passthrough_headers) VALUES (1, $1)
			ON CONFLICT (id) DO UPDATE SET passthrough_headers = excluded.passthrough_headers`, column)
		return err
	})
	if err != nil {
		return fmt.Errorf("set global passthrough headers: %w", err)
	}
	return nil
}

// SeedGlobalPassthrough stores names (nil as an empty list) as the global
// allowlist when no row exists, and reports whether it created the row. It
// never overwrites a row (spec §3: the first start seeds it from the env
// list, see passthrough.SeedList). Any number of callers, in one process or
// many, create one row between them, and exactly one is told it did: the
// row has a fixed key and the insert does nothing on conflict.
func (s *Store) SeedGlobalPassthrough(ctx context.Context, names []string) (created bool, err error) {
	column, err := encodeNames(&names)
	if err != nil {
		return false, fmt.Errorf("seed global passthrough headers: %w", err)
	}
	err = s.db.write(ctx, func(q querier) error {
		n, err := q.exec(ctx, `INSERT INTO global_config (id, passthrough_headers) VALUES (1, $1)
			ON CONFLICT (id) DO NOTHING`, column)
		created = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("seed global passthrough headers: %w", err)
	}
	return created, nil
}
