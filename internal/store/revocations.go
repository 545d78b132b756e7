package store

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"
)

// The kinds of token revocation.
const (
	RevokeTokenID = "jti"     // one token, by its jti (any issuer)
	RevokeSubject = "subject" // every token of (issuer, subject) issued up to RevokedAt
)

// Revocation is a client token, or a subject's tokens, that an
// administrator revoked.
type Revocation struct {
	ID        string
	Kind      string // RevokeTokenID or RevokeSubject
	Issuer    string // for RevokeSubject; "" for RevokeTokenID
	Value     string // the jti or the subject
	Reason    string
	RevokedBy string
	RevokedAt time.Time
}

const revocationColumns = `id, kind, issuer, value, reason, revoked_by, revoked_at`

// AddRevocation stores r (its ID and RevokedAt are set here) and returns it
// as stored. Revoking what is revoked already keeps the revocation's ID and
// moves RevokedAt to now: for a subject, the tokens issued since are
// refused too.
func (s *Store) AddRevocation(ctx context.Context, r Revocation) (Revocation, error) {
	if (r.Kind != RevokeTokenID && r.Kind != RevokeSubject) || r.Value == "" {
		return Revocation{}, fmt.Errorf("add revocation: kind %q with value %q", r.Kind, r.Value)
	}
	r.ID, r.RevokedAt = rand.Text(), timestamp()
	var stored Revocation
	err := s.db.write(ctx, func(q querier) error {
		return q.queryRow(ctx, `INSERT INTO token_revocations (`+revocationColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (kind, issuer, value) DO UPDATE SET reason = excluded.reason, revoked_by = excluded.revoked_by, revoked_at = excluded.revoked_at
			RETURNING `+revocationColumns,
			r.ID, r.Kind, r.Issuer, r.Value, r.Reason, r.RevokedBy, r.RevokedAt).Scan(scanRevocation(&stored)...)
	})
	if err != nil {
		return Revocation{}, fmt.Errorf("add revocation: %w", err)
	}
	stored.RevokedAt = stored.RevokedAt.UTC()
	return stored, nil
}

// Revocations returns every revocation, oldest first.
func (s *Store) Revocations(ctx context.Context) ([]Revocation, error) {
	r, err := s.db.query(ctx, `SELECT `+revocationColumns+` FROM token_revocations ORDER BY revoked_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	defer r.Close()
	var list []Revocation
	for r.Next() {
		var rv Revocation
		if err := r.Scan(scanRevocation(&rv)...); err != nil {
			return nil, fmt.Errorf("list revocations: %w", err)
		}
		rv.RevokedAt = rv.RevokedAt.UTC()
		list = append(list, rv)
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	return list, nil
}

// DeleteRevocation lifts the revocation id; an unknown id is an error
// wrapping ErrNotFound.
func (s *Store) DeleteRevocation(ctx context.Context, id string) error {
	var n int64
	err := s.db.write(ctx, func(q querier) error {
		var err error
		n, err = q.exec(ctx, `DELETE FROM token_revocations WHERE id = $1`, id)
		return err
	})
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete revocation %s: %w", id, err)
	}
	return nil
}

func scanRevocation(r *Revocation) []any {
	return []any{&r.ID, &r.Kind, &r.Issuer, &r.Value, &r.Reason, &r.RevokedBy, &r.RevokedAt}
}
