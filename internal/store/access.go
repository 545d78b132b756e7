package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// AccessRules reads the stored per-client access rules, a JSON array as
// SetAccessRules wrote it; nil when none were ever stored.
func (s *Store) AccessRules(ctx context.Context) (json.RawMessage, error) {
	var rules string
	err := s.db.queryRow(ctx, `SELECT rules FROM access_rules WHERE id = 1`).Scan(&rules)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read access rules: %w", err)
	}
	return json.RawMessage(rules), nil
}

// SetAccessRules replaces the stored access rules with rules, a JSON array.
func (s *Store) SetAccessRules(ctx context.Context, rules json.RawMessage) error {
	if !json.Valid(rules) {
		return errors.New("set access rules: not JSON")
	}
	err := s.db.write(ctx, func(q querier) error {
		_, err := q.exec(ctx, `INSERT INTO access_rules (id, rules, updated_at) VALUES (1, $1, $2)
			ON CONFLICT (id) DO UPDATE SET rules = excluded.rules, updated_at = excluded.updated_at`, string(rules), timestamp())
		return err
	})
	if err != nil {
		return fmt.Errorf("set access rules: %w", err)
	}
	return nil
}
