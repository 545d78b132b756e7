package store

import (
	"context"
	"fmt"
	"time"
)

// SigningKey is one of mcpgate's identity assertion signing keys
// (docs/identity-assertion.md). The store keeps the private key as given,
// already sealed.
type SigningKey struct {
	ID        string
	Sealed    []byte // the private key, sealed by the caller
	Public    []byte
	CreatedAt time.Time
	SignsFrom time.Time
}

// SigningKeys returns every signing key, oldest first (by creation, then
// id).
func (s *Store) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	r, err := s.db.query(ctx, `SELECT id, private_key, public_key, created_at, signs_from FROM signing_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	defer r.Close()
	var keys []SigningKey
	for r.Next() {
		var k SigningKey
		if err := r.Scan(&k.ID, &k.Sealed, &k.Public, &k.CreatedAt, &k.SignsFrom); err != nil {
			return nil, fmt.Errorf("list signing keys: %w", err)
		}
		k.CreatedAt, k.SignsFrom = k.CreatedAt.UTC(), k.SignsFrom.UTC()
		keys = append(keys, k)
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	return keys, nil
}

// AddSigningKey stores k (an EdDSA key) unless a key created after
// unlessCreatedAfter exists, and reports whether it did, so that an
// instance that finds another has just rotated adds none. Two instances
// rotating at the same moment on PostgreSQL may both add one, which is
// harmless (the newer signs).
func (s *Store) AddSigningKey(ctx context.Context, k SigningKey, unlessCreatedAfter time.Time) (bool, error) {
	added := false
	err := s.db.write(ctx, func(q querier) error {
		var newer bool
		if err := q.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM signing_keys WHERE created_at > $1)`,
			unlessCreatedAfter.UTC().Truncate(time.Microsecond)).Scan(&newer); err != nil {
			return err
		}
		if newer {
			return nil
		}
		_, err := q.exec(ctx, `INSERT INTO signing_keys (id, algorithm, private_key, public_key, created_at, signs_from)
			VALUES ($1, 'EdDSA', $2, $3, $4, $5)`, k.ID, k.Sealed, k.Public,
			k.CreatedAt.UTC().Truncate(time.Microsecond), k.SignsFrom.UTC().Truncate(time.Microsecond))
		added = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("add signing key %s: %w", k.ID, err)
	}
	return added, nil
}

// DeleteSigningKeys deletes the keys with the given ids; unknown ids are
// ignored (another instance may have deleted them first).
func (s *Store) DeleteSigningKeys(ctx context.Context, ids []string) error {
	err := s.db.write(ctx, func(q querier) error {
		for _, id := range ids {
			if _, err := q.exec(ctx, `DELETE FROM signing_keys WHERE id = $1`, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete signing keys: %w", err)
	}
	return nil
}
