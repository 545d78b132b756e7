package store

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// sampleUpstream is an upstream with every field set.
func sampleUpstream(name string) Upstream {
	return Upstream{
		Name:               name,
		Slug:               strings.ToLower(name),
		URL:                "http://127.0.0.1:9000/mcp",
		Transport:          "STREAMABLEHTTP",
		AuthType:           "bearer",
		AuthSecret:         []byte{0x00, 0x01, 0xfe, 0xff, 'k', 0x00}, // encrypted bytes: NULs and all
		PassthroughHeaders: &[]string{"X-Tenant-Id", "X-Trace-Id"},
		Enabled:            true,
		Status:             "unavailable",
		StatusReason:       "dial tcp 127.0.0.1:9000: connect: connection refused",
	}
}

// show prints an upstream with its header list, not the list's address.
func show(u Upstream) string {
	headers := "nil"
	if u.PassthroughHeaders != nil {
		headers = fmt.Sprintf("&%#v", *u.PassthroughHeaders)
	}
	u.PassthroughHeaders = nil
	return fmt.Sprintf("%+v PassthroughHeaders:%s", u, headers)
}

func assertUpstream(t *testing.T, what string, got, want Upstream) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, show(got), show(want))
	}
}

func TestUpstreamRoundTrip(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		in := sampleUpstream("CRM")
		created, err := s.CreateUpstream(ctx, in)
		if err != nil {
			t.Fatalf("CreateUpstream: %v", err)
		}
		uuidV4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
		if !uuidV4.MatchString(created.ID) {
			t.Errorf("ID %q is not a UUID v4", created.ID)
		}
		if created.Version != 1 || created.CreatedAt.IsZero() || !created.UpdatedAt.Equal(created.CreatedAt) {
			t.Errorf("created: Version %d, CreatedAt %v, UpdatedAt %v; want 1 and two equal times",
				created.Version, created.CreatedAt, created.UpdatedAt)
		}
		want := sampleUpstream("CRM") // not in: its slices change below
		want.ID, want.Version, want.CreatedAt, want.UpdatedAt = created.ID, 1, created.CreatedAt, created.CreatedAt
		assertUpstream(t, "CreateUpstream", created, want)

		// What the caller gave is copied, not kept.
		in.AuthSecret[0] = 'X'
		(*in.PassthroughHeaders)[0] = "X-Changed"

		got, err := s.GetUpstream(ctx, created.ID)
		if err != nil {
			t.Fatalf("GetUpstream: %v", err)
		}
		assertUpstream(t, "GetUpstream", got, want)

		list, err := s.ListUpstreams(ctx)
		if err != nil {
			t.Fatalf("ListUpstreams: %v", err)
		}
		if len(list) != 1 {
			t.Fatalf("ListUpstreams returned %d upstreams, want 1", len(list))
		}
		assertUpstream(t, "ListUpstreams", list[0], want)

		change := got
		change.Name, change.Slug, change.URL = "CRM two", "crm-two", "https://crm.example/sse"
		change.Transport, change.AuthType, change.AuthSecret = "SSE", "none", nil
		change.PassthroughHeaders, change.Enabled = nil, false
		change.Status, change.StatusReason = "available", ""
		updated, err := s.UpdateUpstream(ctx, change)
		if err != nil {
			t.Fatalf("UpdateUpstream: %v", err)
		}
		if updated.Version != 2 || updated.UpdatedAt.Before(created.UpdatedAt) {
			t.Errorf("updated: Version %d, UpdatedAt %v; want 2 and not before %v", updated.Version, updated.UpdatedAt, created.UpdatedAt)
		}
		want = change
		want.Version, want.UpdatedAt = 2, updated.UpdatedAt
		assertUpstream(t, "UpdateUpstream", updated, want)
		got, err = s.GetUpstream(ctx, created.ID)
		if err != nil {
			t.Fatalf("GetUpstream after update: %v", err)
		}
		assertUpstream(t, "GetUpstream after update", got, want)
	})
}

// TestNullPassthroughHeadersStayNull: an upstream's list reads back exactly
// as written, nil (inherit) apart from empty (forward nothing), through
// create and through every update (spec §3, deviation D5).
func TestNullPassthroughHeadersStayNull(t *testing.T) {
	lists := []struct {
		name    string
		headers *[]string
	}{
		{"null", nil},
		{"empty", &[]string{}},
		{"list", &[]string{"X-Tenant-Id", "X-Trace-Id"}},
	}
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		for _, from := range lists {
			for _, to := range lists {
				u := sampleUpstream("from-" + from.name + "-to-" + to.name)
				u.PassthroughHeaders = from.headers
				created, err := s.CreateUpstream(ctx, u)
				if err != nil {
					t.Fatal(err)
				}
				got, err := s.GetUpstream(ctx, created.ID)
				if err != nil {
					t.Fatal(err)
				}
				assertHeaders(t, u.Name+" after create", got.PassthroughHeaders, from.headers)
				got.PassthroughHeaders = to.headers
				if _, err := s.UpdateUpstream(ctx, got); err != nil {
					t.Fatal(err)
				}
				got, err = s.GetUpstream(ctx, created.ID)
				if err != nil {
					t.Fatal(err)
				}
				assertHeaders(t, u.Name+" after update", got.PassthroughHeaders, to.headers)
			}
		}
	})
}

func assertHeaders(t *testing.T, what string, got, want *[]string) {
	t.Helper()
	switch {
	case want == nil && got != nil:
		t.Errorf("%s: headers %#v, want nil (inherit)", what, *got)
	case want != nil && got == nil:
		t.Errorf("%s: headers nil, want %#v", what, *want)
	case want != nil && (*got == nil || !reflect.DeepEqual(*got, *want)):
		t.Errorf("%s: headers %#v, want %#v", what, *got, *want)
	}
}

func TestUpstreamNameAndSlugAreUnique(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		for _, name := range []string{"CRM", "Ärzte"} {
			if _, err := s.CreateUpstream(ctx, sampleUpstream(name)); err != nil {
				t.Fatal(err)
			}
		}
		other, err := s.CreateUpstream(ctx, sampleUpstream("Billing"))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, upstreamName, slug string
			update                   bool   // rename other instead of creating
			says                     string // what the error must name
		}{
			{"name in another case", "crm", "crm-2", false, `name "crm"`},
			{"non-ASCII name in another case", "äRZTE", "aerzte", false, `name "äRZTE"`}, // SQLite's lower() would miss it
			{"slug", "Customers", "crm", false, `slug "crm"`},
			{"both", "Crm", "crm", false, `name "Crm" (names are compared case-insensitively) and the slug "crm"`},
			{"rename into a taken name", "cRM", "billing", true, `name "cRM"`},
		} {
			u := sampleUpstream(tc.upstreamName)
			u.Slug = tc.slug
			if tc.update {
				u.ID = other.ID
				_, err = s.UpdateUpstream(ctx, u)
			} else {
				_, err = s.CreateUpstream(ctx, u)
			}
			if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%s: err = %v, want ErrConflict naming %s", tc.name, err, tc.says)
			}
		}
		got, err := s.GetUpstream(ctx, other.ID)
		if err != nil {
			t.Fatal(err)
		}
		assertUpstream(t, "the upstream a failed rename left", got, other)
	})
}

func TestUnknownUpstreamIsNotFound(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		id := newID()
		for op, call := range map[string]func() error{
			"GetUpstream": func() error { _, err := s.GetUpstream(ctx, id); return err },
			"UpdateUpstream": func() error {
				u := sampleUpstream("ghost")
				u.ID = id
				_, err := s.UpdateUpstream(ctx, u)
				return err
			},
			"SetUpstreamStatus": func() error { return s.SetUpstreamStatus(ctx, id, "available", "") },
			"DeleteUpstream":    func() error { return s.DeleteUpstream(ctx, id) },
			"SaveCatalogue":     func() error { return s.SaveCatalogue(ctx, id, Catalogue{}) },
			"LoadCatalogue":     func() error { _, err := s.LoadCatalogue(ctx, id); return err },
		} {
			if err := call(); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), id) {
				t.Errorf("%s of an unknown upstream: err = %v, want ErrNotFound naming the ID", op, err)
			}
		}
	})
}

func TestUpdateWithStaleVersionConflicts(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		read, err := s.CreateUpstream(ctx, sampleUpstream("CRM"))
		if err != nil {
			t.Fatal(err)
		}
		first := read
		first.URL = "http://first.example/mcp"
		if _, err := s.UpdateUpstream(ctx, first); err != nil {
			t.Fatalf("update at the version read: %v", err)
		}
		second := read // still version 1
		second.URL = "http://second.example/mcp"
		_, err = s.UpdateUpstream(ctx, second)
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "changed since read (version 1 read, 2 stored)") {
			t.Errorf("update at a stale version: err = %v, want ErrConflict, changed since read", err)
		}
		stored, err := s.GetUpstream(ctx, read.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.URL != first.URL || stored.Version != 2 {
			t.Errorf("after the refused update: URL %q version %d, want %q version 2", stored.URL, stored.Version, first.URL)
		}
		second.Version = 0 // no check
		forced, err := s.UpdateUpstream(ctx, second)
		if err != nil || forced.Version != 3 || forced.URL != second.URL {
			t.Errorf("update with Version 0 = version %d URL %q, %v; want version 3 and %q", forced.Version, forced.URL, err, second.URL)
		}
	})
}

// TestConcurrentUpdatesAtOneVersion: of writers who read the same version,
// exactly one wins; the others are told of the conflict.
func TestConcurrentUpdatesAtOneVersion(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		read, err := s.CreateUpstream(t.Context(), sampleUpstream("CRM"))
		if err != nil {
			t.Fatal(err)
		}
		const writers = 10
		errs := make([]error, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				u := read
				u.URL = fmt.Sprintf("http://writer-%d.example/mcp", i)
				<-start
				_, errs[i] = s.UpdateUpstream(t.Context(), u)
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrConflict):
				t.Errorf("a losing writer got %v, want ErrConflict", err)
			}
		}
		stored, err := s.GetUpstream(t.Context(), read.ID)
		if err != nil {
			t.Fatal(err)
		}
		if won != 1 || stored.Version != 2 {
			t.Errorf("%d writers won and the version is %d; want 1 and 2", won, stored.Version)
		}
	})
}

func TestSetUpstreamStatusKeepsVersion(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		created, err := s.CreateUpstream(ctx, sampleUpstream("CRM"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetUpstreamStatus(ctx, created.ID, "available", ""); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetUpstream(ctx, created.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := created
		want.Status, want.StatusReason = "available", ""
		assertUpstream(t, "after SetUpstreamStatus", got, want)
	})
}

func TestListUpstreamsOrdersByName(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		for _, name := range []string{"beta", "Delta", "alpha-2", "Alpha", "gamma"} {
			if _, err := s.CreateUpstream(t.Context(), sampleUpstream(name)); err != nil {
				t.Fatal(err)
			}
		}
		list, err := s.ListUpstreams(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, u := range list {
			names = append(names, u.Name)
		}
		if want := []string{"Alpha", "alpha-2", "beta", "Delta", "gamma"}; !reflect.DeepEqual(names, want) {
			t.Errorf("ListUpstreams names = %q, want %q", names, want)
		}
	})
}

func TestDeleteUpstreamDeletesItsCatalogue(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		gone, err := s.CreateUpstream(ctx, sampleUpstream("CRM"))
		if err != nil {
			t.Fatal(err)
		}
		kept, err := s.CreateUpstream(ctx, sampleUpstream("Billing"))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{gone.ID, kept.ID} {
			if err := s.SaveCatalogue(ctx, id, sampleCatalogue()); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteUpstream(ctx, gone.ID); err != nil {
			t.Fatalf("DeleteUpstream: %v", err)
		}
		if _, err := s.GetUpstream(ctx, gone.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetUpstream after delete: err = %v, want ErrNotFound", err)
		}
		if n := countRows(t, s.db, `SELECT COUNT(*) FROM catalogues WHERE upstream_id = $1`, gone.ID); n != 0 {
			t.Errorf("%d catalogue rows outlived their upstream", n)
		}
		if c, err := s.LoadCatalogue(ctx, kept.ID); err != nil || len(c.Tools) == 0 {
			t.Errorf("the other upstream's catalogue: %d tools, %v; want it kept", len(c.Tools), err)
		}
		if err := s.DeleteUpstream(ctx, gone.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleting twice: err = %v, want ErrNotFound", err)
		}
	})
}
