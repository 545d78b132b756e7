package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Catalogue is what an upstream offers: the items of its tools/list,
// resources/list, resources/templates/list and prompts/list results, each a
// JSON object exactly as the upstream sent it. Items come back byte for
// byte, unknown fields and key order included; an empty list comes back nil.
type Catalogue struct {
	Tools             []json.RawMessage
	Resources         []json.RawMessage
	ResourceTemplates []json.RawMessage
	Prompts           []json.RawMessage
	// RefreshedAt is when the catalogue was read from the upstream, kept to
	// the microsecond, in UTC. SaveCatalogue sets it to now when zero.
	RefreshedAt time.Time
}

// SaveCatalogue replaces the catalogue of an upstream, unless the one stored
// was read later (RefreshedAt): instances that list the same upstream may
// save out of order, and the later reading is the one to keep. Each item must be one
// JSON value in UTF-8 with no white space around it, as a decoder hands it
// over. An unknown upstream is an error wrapping ErrNotFound.
func (s *Store) SaveCatalogue(ctx context.Context, upstreamID string, c Catalogue) error {
	var columns [4]string
	for i, list := range c.lists() {
		var err error
		if columns[i], err = encodeItems(*list.items); err != nil {
			return fmt.Errorf("save catalogue of upstream %s: %s: %w", upstreamID, list.column, err)
		}
	}
	refreshed := c.RefreshedAt.UTC().Truncate(time.Microsecond)
	if c.RefreshedAt.IsZero() {
		refreshed = timestamp()
	}
	err := s.db.write(ctx, func(q querier) error {
		_, err := q.exec(ctx, `INSERT INTO catalogues (upstream_id, tools, resources, resource_templates, prompts, refreshed_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (upstream_id) DO UPDATE SET tools = excluded.tools, resources = excluded.resources,
				resource_templates = excluded.resource_templates, prompts = excluded.prompts,
				refreshed_at = excluded.refreshed_at
			WHERE catalogues.refreshed_at <= excluded.refreshed_at`,
			upstreamID, columns[0], columns[1], columns[2], columns[3], refreshed)
		return err
	})
	if s.db.violation(err) == foreignKeyViolation {
		err = ErrNotFound // no such upstream
	}
	if err != nil {
		return fmt.Errorf("save catalogue of upstream %s: %w", upstreamID, err)
	}
	return nil
}

// catalogueList is one list of a Catalogue and the column that holds it.
type catalogueList struct {
	column string
	items  *[]json.RawMessage
}

// lists returns c's lists in the order of their columns.
func (c *Catalogue) lists() [4]catalogueList {
	return [4]catalogueList{
		{"tools", &c.Tools},
		{"resources", &c.Resources},
		{"resource_templates", &c.ResourceTemplates},
		{"prompts", &c.Prompts},
	}
}

// LoadCatalogue returns the catalogue of an upstream: an empty Catalogue when
// none was ever saved, an error wrapping ErrNotFound when the upstream does
// not exist.
func (s *Store) LoadCatalogue(ctx context.Context, upstreamID string) (Catalogue, error) {
	var columns [4]*string // all NULL when the upstream has no catalogue yet
	var refreshed *time.Time
	err := s.db.queryRow(ctx, `SELECT c.tools, c.resources, c.resource_templates, c.prompts, c.refreshed_at
		FROM upstreams u LEFT JOIN catalogues c ON c.upstream_id = u.id
		WHERE u.id = $1`, upstreamID).Scan(&columns[0], &columns[1], &columns[2], &columns[3], &refreshed)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Catalogue{}, fmt.Errorf("load catalogue of upstream %s: %w", upstreamID, err)
	}
	var c Catalogue
	if refreshed != nil {
		c.RefreshedAt = refreshed.UTC()
	}
	for i, list := range c.lists() {
		if columns[i] == nil {
			continue
		}
		if err := json.Unmarshal([]byte(*columns[i]), list.items); err != nil {
			return Catalogue{}, fmt.Errorf("load catalogue of upstream %s: %s: %w", upstreamID, list.column, err)
		}
		if len(*list.items) == 0 {
			*list.items = nil
		}
	}
	return c, nil
}

// encodeItems joins raw items into a JSON array without re-encoding them:
// json.Marshal would compact each one, and the bytes must stay as sent.
// Decoding the array into []json.RawMessage gives each item back as it was.
func encodeItems(items []json.RawMessage) (string, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, item := range items {
		if !json.Valid(item) {
			return "", fmt.Errorf("item %d is not valid JSON", i)
		}
		if !utf8.Valid(item) { // json.Valid lets it by; PostgreSQL's TEXT would not
			return "", fmt.Errorf("item %d is not valid UTF-8", i)
		}
		if isJSONSpace(item[0]) || isJSONSpace(item[len(item)-1]) {
			return "", fmt.Errorf("item %d has white space around it, which would not be kept", i)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(item)
	}
	b.WriteByte(']')
	return b.String(), nil
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
