package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

// sampleCatalogue has items as an upstream may send them: keys in no
// particular order, white space inside, fields no MCP version defines,
// escapes, a duplicate key, a number no float64 holds.
func sampleCatalogue() Catalogue {
	return Catalogue{
		Tools: []json.RawMessage{
			json.RawMessage(`{"name":"search","x-vendor":{"z":1,"a":[3,  2,1]},"inputSchema":{"type":"object","properties":{}},"description":"Caf\u00e9 \"quoted\" <b>&amp;</b>"}`),
			json.RawMessage(`{ "inputSchema" : { "type" : "object" } ,
  "name" : "spaced",
  "big": 123456789012345678901234567890, "f": 1.50e+2, "dup": 1, "dup": 2 }`),
		},
		Resources: []json.RawMessage{
			json.RawMessage(`{"uri":"file:///etc/motd","name":"motd","mimeType":"text/plain","annotations":{"priority":0.5}}`),
		},
		ResourceTemplates: []json.RawMessage{
			json.RawMessage(`{"uriTemplate":"crm://customers/{id}","name":"customer","_meta":{"é":"ü"}}`),
		},
		Prompts: []json.RawMessage{
			json.RawMessage(`{"name":"summarise","arguments":[{"required":true,"name":"text"}]}`),
		},
		RefreshedAt: time.Date(2026, 5, 20, 9, 30, 15, 123456789, time.FixedZone("CEST", 2*3600)),
	}
}

func TestCatalogueKeepsRawBytes(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		u, err := s.CreateUpstream(ctx, sampleUpstream("CRM"))
		if err != nil {
			t.Fatal(err)
		}
		empty, err := s.LoadCatalogue(ctx, u.ID)
		if err != nil || !reflect.DeepEqual(empty, Catalogue{}) {
			t.Errorf("LoadCatalogue before any save = %+v, %v; want an empty Catalogue", empty, err)
		}

		saved := sampleCatalogue()
		if err := s.SaveCatalogue(ctx, u.ID, saved); err != nil {
			t.Fatalf("SaveCatalogue: %v", err)
		}
		loaded, err := s.LoadCatalogue(ctx, u.ID)
		if err != nil {
			t.Fatalf("LoadCatalogue: %v", err)
		}
		want := saved
		want.RefreshedAt = saved.RefreshedAt.UTC().Truncate(time.Microsecond)
		assertCatalogue(t, loaded, want)

		// A save replaces the whole catalogue; a zero RefreshedAt means now.
		before := time.Now()
		replacement := Catalogue{Tools: saved.Tools[1:]}
		if err := s.SaveCatalogue(ctx, u.ID, replacement); err != nil {
			t.Fatalf("SaveCatalogue again: %v", err)
		}
		loaded, err = s.LoadCatalogue(ctx, u.ID)
		if err != nil {
			t.Fatalf("LoadCatalogue again: %v", err)
		}
		if loaded.RefreshedAt.Before(before.Add(-time.Second)) || loaded.RefreshedAt.After(time.Now().Add(time.Second)) {
			t.Errorf("RefreshedAt of a save without one = %v, want about %v", loaded.RefreshedAt, before)
		}
		replacement.RefreshedAt = loaded.RefreshedAt
		assertCatalogue(t, loaded, replacement)
	})
}

func assertCatalogue(t *testing.T, got, want Catalogue) {
	t.Helper()
	for i, list := range got.lists() {
		gotItems, wantItems := *list.items, *want.lists()[i].items
		if len(gotItems) != len(wantItems) || (gotItems == nil) != (wantItems == nil) {
			t.Errorf("%s: %d items (nil: %t), want %d (nil: %t)", list.column, len(gotItems), gotItems == nil, len(wantItems), wantItems == nil)
			continue
		}
		for j := range gotItems {
			if string(gotItems[j]) != string(wantItems[j]) {
				t.Errorf("%s[%d]:\n got %s\nwant %s", list.column, j, gotItems[j], wantItems[j])
			}
		}
	}
	if !got.RefreshedAt.Equal(want.RefreshedAt) || got.RefreshedAt.Location() != time.UTC {
		t.Errorf("RefreshedAt = %v, want %v in UTC", got.RefreshedAt, want.RefreshedAt)
	}
}

func TestSaveCatalogueRefusesItemsItCannotKeep(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		u, err := s.CreateUpstream(ctx, sampleUpstream("CRM"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SaveCatalogue(ctx, u.ID, sampleCatalogue()); err != nil {
			t.Fatal(err)
		}
		for name, item := range map[string]string{
			"not JSON":      `{"name":`,
			"two values":    `{} {}`,
			"space around":  ` {"name":"x"}`,
			"newline after": "{\"name\":\"x\"}\n",
			"empty":         ``,
			"invalid UTF-8": "\"\xff\"",
		} {
			err := s.SaveCatalogue(ctx, u.ID, Catalogue{Prompts: []json.RawMessage{json.RawMessage(item)}})
			if err == nil || errors.Is(err, ErrNotFound) {
				t.Errorf("%s: SaveCatalogue(%q) = %v, want an error", name, item, err)
			}
		}
		loaded, err := s.LoadCatalogue(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := sampleCatalogue()
		want.RefreshedAt = want.RefreshedAt.UTC().Truncate(time.Microsecond)
		assertCatalogue(t, loaded, want)
	})
}

// Two instances list the same upstream and save what they read: the
// reading made later stays, whichever save arrives last. An instance
// whose write is slow must not put back the catalogue another has
// refreshed since (the others would then never see the refresh).
func TestSaveCatalogueKeepsTheLaterReading(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		u, err := s.CreateUpstream(ctx, sampleUpstream("Refreshed"))
		if err != nil {
			t.Fatal(err)
		}
		earlier := time.Date(2026, 12, 4, 5, 31, 21, 251000000, time.UTC)
		later := earlier.Add(9 * time.Millisecond)
		newer := Catalogue{Tools: []json.RawMessage{json.RawMessage(`{"name":"second"}`)}, RefreshedAt: later}
		older := Catalogue{Tools: []json.RawMessage{json.RawMessage(`{"name":"first"}`)}, RefreshedAt: earlier}
		if err := s.SaveCatalogue(ctx, u.ID, newer); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveCatalogue(ctx, u.ID, older); err != nil {
			t.Fatalf("SaveCatalogue of an older reading: %v; want it ignored without an error", err)
		}
		loaded, err := s.LoadCatalogue(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		assertCatalogue(t, loaded, newer)

		// A reading a microsecond later still wins, as does one without a time (now).
		newest := Catalogue{Tools: []json.RawMessage{json.RawMessage(`{"name":"third"}`)}, RefreshedAt: later.Add(time.Microsecond)}
		if err := s.SaveCatalogue(ctx, u.ID, newest); err != nil {
			t.Fatal(err)
		}
		if loaded, err = s.LoadCatalogue(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		assertCatalogue(t, loaded, newest)
	})
}
