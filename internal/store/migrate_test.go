package store

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

func TestMigrationSetsMatch(t *testing.T) {
	sqlite, err := dialectMigrations(DialectSQLite)
	if err != nil {
		t.Fatal(err)
	}
	postgres, err := dialectMigrations(DialectPostgres)
	if err != nil {
		t.Fatal(err)
	}
	names := func(set []migration) (names []string) {
		for _, m := range set {
			names = append(names, m.name)
		}
		return names
	}
	if len(sqlite) == 0 || !reflect.DeepEqual(names(sqlite), names(postgres)) {
		t.Errorf("the dialects' migrations differ: sqlite %q, postgres %q", names(sqlite), names(postgres))
	}
}

func TestLoadMigrationsWantsNumbersInOrder(t *testing.T) {
	for name, files := range map[string][]string{
		"gap":       {"0001_a.sql", "0003_c.sql"},
		"no number": {"0001_a.sql", "init.sql"},
		"from zero": {"0000_a.sql"},
	} {
		dir := fstest.MapFS{}
		for _, f := range files {
			dir[f] = &fstest.MapFile{Data: []byte("SELECT 1")}
		}
		if _, err := loadMigrations(dir); err == nil {
			t.Errorf("%s: loadMigrations(%q) succeeded", name, files)
		}
	}
}

// openBackendForTest connects without migrating, closing when the test ends.
func openBackendForTest(t *testing.T, databaseURL string) backend {
	t.Helper()
	db, err := openBackend(t.Context(), databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.close() })
	return db
}

// schemaState is what a migration changes: the tables and the recorded
// versions.
func schemaState(t *testing.T, db backend) (tables []string, versions []int) {
	t.Helper()
	query := `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`
	if db.dialect() == DialectPostgres {
		query = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename`
	}
	for q, scan := range map[string]func(r rows) error{
		query: func(r rows) error {
			var name string
			err := r.Scan(&name)
			tables = append(tables, name)
			return err
		},
		`SELECT version FROM schema_migrations ORDER BY version`: func(r rows) error {
			var v int
			err := r.Scan(&v)
			versions = append(versions, v)
			return err
		},
	} {
		r, err := db.query(t.Context(), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for r.Next() {
			if err := scan(r); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if err := r.Err(); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		r.Close()
	}
	return tables, versions
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, databaseURL string) {
		s, err := Open(t.Context(), databaseURL)
		if err != nil {
			t.Fatal(err)
		}
		// A later mcpgate migrated this database further.
		if _, err := s.db.exec(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (7, '0007_future.sql', $1)`, timestamp()); err != nil {
			t.Fatal(err)
		}
		s.Close()
		db := openBackendForTest(t, databaseURL)
		tables, versions := schemaState(t, db)

		s, err = Open(t.Context(), databaseURL)
		if err == nil {
			s.Close()
			t.Fatal("Open of a newer schema succeeded")
		}
		set, _ := dialectMigrations(db.dialect())
		if want := fmt.Sprintf("database schema version 7 is newer than this mcpgate knows (%d): upgrade mcpgate", len(set)); !strings.Contains(err.Error(), want) {
			t.Errorf("Open = %q, want it to say %q", err, want)
		}
		afterTables, afterVersions := schemaState(t, db)
		if !reflect.DeepEqual(afterTables, tables) || !reflect.DeepEqual(afterVersions, versions) {
			t.Errorf("the refused Open changed the schema: tables %q versions %v, were %q %v", afterTables, afterVersions, tables, versions)
		}
	})
}

// TestNewerSchemaGetsNoMigration: a binary behind the database applies
// nothing, not even the migrations the database seems to lack.
func TestNewerSchemaGetsNoMigration(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, databaseURL string) {
		db := openBackendForTest(t, databaseURL)
		first := migration{version: 1, name: "0001_first.sql", sql: `CREATE TABLE step_one (id INTEGER PRIMARY KEY)`}
		second := migration{version: 2, name: "0002_second.sql", sql: `CREATE TABLE step_two (id INTEGER PRIMARY KEY)`}
		if _, err := migrate(t.Context(), db, []migration{first}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.exec(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (3, '0003_third.sql', $1)`, timestamp()); err != nil {
			t.Fatal(err)
		}
		applied, err := migrate(t.Context(), db, []migration{first, second})
		if err == nil || len(applied) != 0 {
			t.Fatalf("migrate behind the database = %v, %v; want an error and nothing applied", applied, err)
		}
		tables, versions := schemaState(t, db)
		if !reflect.DeepEqual(tables, []string{"schema_migrations", "step_one"}) || !reflect.DeepEqual(versions, []int{1, 3}) {
			t.Errorf("after the refused migration: tables %q versions %v; want [schema_migrations step_one] [1 3]", tables, versions)
		}
	})
}

func TestReopenAppliesNothing(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, databaseURL string) {
		db := openBackendForTest(t, databaseURL)
		set, err := dialectMigrations(db.dialect())
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range [][]int{allVersions(set), nil, nil} {
			applied, err := migrate(t.Context(), db, set)
			if err != nil || !reflect.DeepEqual(applied, want) {
				t.Errorf("migration %d applied %v, %v; want %v", i+1, applied, err, want)
			}
		}
		// And through Open, with data in the tables.
		s := openStore(t, databaseURL)
		if _, err := s.CreateUpstream(t.Context(), sampleUpstream("CRM")); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = openStore(t, databaseURL)
		if list, err := s.ListUpstreams(t.Context()); err != nil || len(list) != 1 {
			t.Errorf("after reopening: %d upstreams, %v; want 1", len(list), err)
		}
		if _, versions := schemaState(t, db); !reflect.DeepEqual(versions, allVersions(set)) {
			t.Errorf("schema_migrations holds %v, want %v", versions, allVersions(set))
		}
	})
}

func allVersions(set []migration) (versions []int) {
	for _, m := range set {
		versions = append(versions, m.version)
	}
	return versions
}

// TestConcurrentOpenMigratesOnce: processes opening a new database at the
// same moment apply each migration once between them.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, databaseURL string) {
		const openers = 10
		dbs := make([]backend, openers)
		for i := range dbs {
			dbs[i] = openBackendForTest(t, databaseURL)
		}
		set, err := dialectMigrations(dbs[0].dialect())
		if err != nil {
			t.Fatal(err)
		}
		applied := make([][]int, openers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, db := range dbs {
			wg.Go(func() {
				<-start
				var err error
				if applied[i], err = migrate(t.Context(), db, set); err != nil {
					t.Errorf("opener %d: %v", i, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if all := slices.Concat(applied...); !reflect.DeepEqual(all, allVersions(set)) {
			t.Errorf("the openers applied %v between them, want %v once", all, allVersions(set))
		}
		// The real Open, many at once, on the migrated database.
		errs := make([]error, openers)
		for i := range openers {
			wg.Go(func() {
				s, err := Open(t.Context(), databaseURL)
				if err == nil {
					err = s.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
			}
		}
		// Last, an upgrade: a newer binary started many times at once, with
		// schema_migrations there and one migration pending. On SQLite a
		// migration transaction that read before it wrote would fail here
		// with SQLITE_BUSY; BEGIN IMMEDIATE is why it does not.
		upgrade := append(slices.Clone(set), migration{version: len(set) + 1, name: "upgrade.sql", sql: `CREATE TABLE upgraded (id INTEGER PRIMARY KEY)`})
		for i, db := range dbs {
			wg.Go(func() {
				var err error
				if applied[i], err = migrate(t.Context(), db, upgrade); err != nil {
					t.Errorf("upgrading opener %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if all := slices.Concat(applied...); !reflect.DeepEqual(all, []int{len(upgrade)}) {
			t.Errorf("the upgrading openers applied %v between them, want [%d] once", all, len(upgrade))
		}
	})
}
