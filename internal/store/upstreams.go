package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Upstream is a registered MCP server (ContextForge: a gateway) as stored.
// The registry validates the fields; the store keeps them as given.
type Upstream struct {
	// ID is a UUID v4 string, assigned by CreateUpstream.
	ID string
	// Name is unique, compared case-insensitively (strings.ToLower).
	Name string
	// Slug is unique; the caller derives it from Name.
	Slug string
	// URL is where the upstream is reached.
	URL string
	// Transport is "STREAMABLEHTTP" or "SSE".
	Transport string
	// AuthType is none, basic, bearer, authheaders or oauth.
	AuthType string
	// AuthSecret is the upstream's credentials, already encrypted: the
	// store never sees them in plaintext. Nil when there are none; an empty
	// secret is stored as none and reads back nil.
	AuthSecret []byte
	// PassthroughHeaders is the upstream's own allowlist (spec §3): nil
	// inherits the global list, a pointer to an empty list forwards
	// nothing. It reads back exactly as written, nil as nil and empty as
	// empty (deviation D5: ContextForge turns null into []).
	PassthroughHeaders *[]string
	// Enabled says whether mcpgate routes calls to the upstream.
	Enabled bool
	// IdentityAssertion says whether mcpgate adds its signed identity
	// assertion to the requests it forwards there (docs/identity-assertion.md).
	IdentityAssertion bool
	// Status is the upstream's health as last seen, such as "available" or
	// "unavailable", and StatusReason why ("dial tcp …: connection
	// refused"). SetUpstreamStatus changes them without a new Version.
	Status, StatusReason string
	// CreatedAt and UpdatedAt are set by the store, in UTC, to the
	// microsecond.
	CreatedAt, UpdatedAt time.Time
	// Version is 1 when created and one more after every UpdateUpstream,
	// for optimistic concurrency.
	Version int64
}

// upstreamColumns are the columns scanUpstream reads, in its order.
const upstreamColumns = `id, name, slug, url, transport, auth_type, auth_secret,
	passthrough_headers, enabled, status, status_reason, created_at, updated_at, version, identity_assertion`

// CreateUpstream stores a new upstream and returns it with its ID, Version
// (1) and times set; u's own ID, Version and times are ignored. A name
// another upstream has, compared case-insensitively, or a slug another has
// is an error wrapping ErrConflict that says which.
func (s *Store) CreateUpstream(ctx context.Context, u Upstream) (Upstream, error) {
	if err := checkUpstream(u); err != nil {
		return Upstream{}, fmt.Errorf("create upstream %q: %w", u.Name, err)
	}
	headers, err := encodeNames(u.PassthroughHeaders)
	if err != nil {
		return Upstream{}, fmt.Errorf("create upstream %q: %w", u.Name, err)
	}
	u = cloneUpstream(u)
	u.ID = newID()
	u.Version = 1
	u.CreatedAt = timestamp()
	u.UpdatedAt = u.CreatedAt
	err = s.db.write(ctx, func(q querier) error {
		_, err := q.exec(ctx, `INSERT INTO upstreams (`+upstreamColumns+`, name_key)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
			u.ID, u.Name, u.Slug, u.URL, u.Transport, u.AuthType, nullBytes(u.AuthSecret),
			headers, u.Enabled, u.Status, u.StatusReason, u.CreatedAt, u.UpdatedAt, u.Version, u.IdentityAssertion, nameKey(u.Name))
		return err
	})
	if err != nil {
		return Upstream{}, s.upstreamWriteError(ctx, "create", u, err)
	}
	return u, nil
}

// GetUpstream returns the upstream with the given ID, or an error wrapping
// ErrNotFound.
func (s *Store) GetUpstream(ctx context.Context, id string) (Upstream, error) {
	u, err := getUpstream(ctx, s.db, id)
	if err != nil {
		return Upstream{}, fmt.Errorf("get upstream %s: %w", id, err)
	}
	return u, nil
}

func getUpstream(ctx context.Context, q querier, id string) (Upstream, error) {
	u, err := scanUpstream(q.queryRow(ctx, `SELECT `+upstreamColumns+` FROM upstreams WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Upstream{}, ErrNotFound
	}
	return u, err
}

// ListUpstreams returns every upstream, ordered by name case-insensitively.
func (s *Store) ListUpstreams(ctx context.Context) ([]Upstream, error) {
	r, err := s.db.query(ctx, `SELECT `+upstreamColumns+` FROM upstreams`)
	if err != nil {
		return nil, fmt.Errorf("list upstreams: %w", err)
	}
	defer r.Close()
	var list []Upstream
	for r.Next() {
		u, err := scanUpstream(r)
		if err != nil {
			return nil, fmt.Errorf("list upstreams: %w", err)
		}
		list = append(list, u)
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("list upstreams: %w", err)
	}
	// Sorted here, not by ORDER BY: PostgreSQL would order by the database's
	// collation and SQLite by bytes.
	slices.SortFunc(list, func(a, b Upstream) int { return strings.Compare(nameKey(a.Name), nameKey(b.Name)) })
	return list, nil
}

// UpdateUpstream replaces every field of the stored upstream u.ID but its ID
// and CreatedAt, and returns it as now stored, with Version one more and
// UpdatedAt now. When u.Version is not 0 it must be the stored version: an
// upstream changed since the caller read it is an error wrapping
// ErrConflict, and so is a name or slug another upstream has. An unknown ID
// is an error wrapping ErrNotFound.
func (s *Store) UpdateUpstream(ctx context.Context, u Upstream) (Upstream, error) {
	if err := checkUpstream(u); err != nil {
		return Upstream{}, fmt.Errorf("update upstream %s: %w", u.ID, err)
	}
	headers, err := encodeNames(u.PassthroughHeaders)
	if err != nil {
		return Upstream{}, fmt.Errorf("update upstream %s: %w", u.ID, err)
	}
	var read any // the version u was read at; NULL matches any
	if u.Version != 0 {
		read = u.Version
	}
	var updated Upstream
	err = s.db.write(ctx, func(q querier) error {
		n, err := q.exec(ctx, `UPDATE upstreams SET name = $2, name_key = $3, slug = $4, url = $5,
			transport = $6, auth_type = $7, auth_secret = $8, passthrough_headers = $9, enabled = $10,
			status = $11, status_reason = $12, updated_at = $13, version = version + 1, identity_assertion = $15
			WHERE id = $1 AND version = COALESCE($14, version)`,
			u.ID, u.Name, nameKey(u.Name), u.Slug, u.URL, u.Transport, u.AuthType, nullBytes(u.AuthSecret),
			headers, u.Enabled, u.Status, u.StatusReason, timestamp(), read, u.IdentityAssertion)
		if err != nil {
			return err
		}
		if n == 0 {
			var stored int64
			err := q.queryRow(ctx, `SELECT version FROM upstreams WHERE id = $1`, u.ID).Scan(&stored)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return ErrNotFound
			case err != nil:
				return err
			}
			return fmt.Errorf("%w: changed since read (version %d read, %d stored)", ErrConflict, u.Version, stored)
		}
		updated, err = getUpstream(ctx, q, u.ID)
		return err
	})
	if err != nil {
		return Upstream{}, s.upstreamWriteError(ctx, "update", u, err)
	}
	return updated, nil
}

// SetUpstreamStatus records an upstream's health. It leaves Version and
// UpdatedAt alone: health is observed, not configured, and a health check
// must not make an administrator's pending edit conflict.
func (s *Store) SetUpstreamStatus(ctx context.Context, id, status, reason string) error {
	err := s.db.write(ctx, func(q querier) error {
		n, err := q.exec(ctx, `UPDATE upstreams SET status = $2, status_reason = $3 WHERE id = $1`, id, status, reason)
		if err == nil && n == 0 {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("set status of upstream %s: %w", id, err)
	}
	return nil
}

// DeleteUpstream deletes an upstream and its catalogue. An unknown ID is an
// error wrapping ErrNotFound.
func (s *Store) DeleteUpstream(ctx context.Context, id string) error {
	err := s.db.write(ctx, func(q querier) error {
		// The catalogue goes by ON DELETE CASCADE.
		n, err := q.exec(ctx, `DELETE FROM upstreams WHERE id = $1`, id)
		if err == nil && n == 0 {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete upstream %s: %w", id, err)
	}
	return nil
}

// upstreamWriteError wraps an error from creating or updating u, turning a
// unique violation into ErrConflict naming the field another upstream holds.
func (s *Store) upstreamWriteError(ctx context.Context, op string, u Upstream, err error) error {
	subject := u.ID
	if op == "create" {
		subject = fmt.Sprintf("%q", u.Name) // no ID yet worth showing
	}
	if s.db.violation(err) != uniqueViolation {
		return fmt.Errorf("%s upstream %s: %w", op, subject, err)
	}
	// The failed transaction is gone; ask which value is taken. The other
	// upstream may have gone meanwhile, so the answer can be neither.
	var nameTaken, slugTaken bool
	lookup := s.db.queryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM upstreams WHERE name_key = $2 AND id <> $1),
		EXISTS (SELECT 1 FROM upstreams WHERE slug = $3 AND id <> $1)`,
		u.ID, nameKey(u.Name), u.Slug)
	if lookupErr := lookup.Scan(&nameTaken, &slugTaken); lookupErr != nil {
		return fmt.Errorf("%s upstream %s: %w: name or slug taken (%v)", op, subject, ErrConflict, lookupErr)
	}
	var taken []string
	if nameTaken {
		taken = append(taken, fmt.Sprintf("name %q (names are compared case-insensitively)", u.Name))
	}
	if slugTaken {
		taken = append(taken, fmt.Sprintf("slug %q", u.Slug))
	}
	if len(taken) == 0 {
		taken = append(taken, "name or slug")
	}
	return fmt.Errorf("%s upstream %s: %w: another upstream has the %s", op, subject, ErrConflict, strings.Join(taken, " and the "))
}

// checkUpstream rejects what the schema cannot: an upstream with no name or
// slug would still be unique once.
func checkUpstream(u Upstream) error {
	switch {
	case u.Name == "":
		return errors.New("the name is empty")
	case u.Slug == "":
		return errors.New("the slug is empty")
	}
	return nil
}

// scanUpstream reads the upstreamColumns of one row.
func scanUpstream(r row) (Upstream, error) {
	var u Upstream
	var headers *string
	err := r.Scan(&u.ID, &u.Name, &u.Slug, &u.URL, &u.Transport, &u.AuthType, &u.AuthSecret,
		&headers, &u.Enabled, &u.Status, &u.StatusReason, &u.CreatedAt, &u.UpdatedAt, &u.Version, &u.IdentityAssertion)
	if err != nil {
		return Upstream{}, err
	}
	if u.PassthroughHeaders, err = decodeNames(headers); err != nil {
		return Upstream{}, fmt.Errorf("upstream %s: passthrough_headers: %w", u.ID, err)
	}
	if len(u.AuthSecret) == 0 {
		u.AuthSecret = nil
	}
	u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	return u, nil
}

// nameKey is the form of a name that must be unique: names are compared
// case-insensitively. Computed here, not by SQL's lower(), so both dialects
// fold the same way.
func nameKey(name string) string { return strings.ToLower(name) }

// encodeNames is a header list as its column holds it: NULL for nil (inherit
// the global list), else a JSON array, "[]" when empty.
func encodeNames(names *[]string) (any, error) {
	if names == nil {
		return nil, nil
	}
	text, err := json.Marshal(append([]string{}, *names...)) // never "null"
	if err != nil {
		return nil, fmt.Errorf("encode header names: %w", err)
	}
	return string(text), nil
}

// decodeNames reverses encodeNames.
func decodeNames(column *string) (*[]string, error) {
	if column == nil {
		return nil, nil
	}
	names := []string{}
	if err := json.Unmarshal([]byte(*column), &names); err != nil {
		return nil, err
	}
	if names == nil { // the column held JSON null
		names = []string{}
	}
	return &names, nil
}

// nullBytes stores an empty byte slice as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// cloneUpstream copies the slices of u, so that the caller's later changes
// do not reach what the store returned.
func cloneUpstream(u Upstream) Upstream {
	if len(u.AuthSecret) == 0 {
		u.AuthSecret = nil
	} else {
		u.AuthSecret = slices.Clone(u.AuthSecret)
	}
	if u.PassthroughHeaders != nil {
		names := append([]string{}, *u.PassthroughHeaders...)
		u.PassthroughHeaders = &names
	}
	return u
}

// newID returns a random UUID (version 4, RFC 9562).
func newID() string {
	var b [16]byte
	rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
