// Package testenv gives tests the real servers the test command starts:
// a fresh PostgreSQL database on the server of scripts/postgres.sh
// (MCPGATE_TEST_POSTGRES_URL) and the Redis of scripts/redis.sh
// (MCPGATE_TEST_REDIS_URL). Without them a test fails, saying how to start
// them; it is never skipped. It also gives a Redis of a test's own, to stop
// and restart, the bounded polling and free ports such tests need, and the
// Bearer challenge of a response as MCP clients read it.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The variables scripts/test.sh sets.
const (
	PostgresEnv = "MCPGATE_TEST_POSTGRES_URL"
	RedisEnv    = "MCPGATE_TEST_REDIS_URL"
)

// PostgresDatabase creates a database named prefix_<random> on the test
// PostgreSQL and returns its URL; it is dropped when the test ends.
func PostgresDatabase(t testing.TB, prefix string) string {
	t.Helper()
	admin := fromEnv(t, PostgresEnv, "PostgreSQL", "scripts/postgres.sh", "postgresql")
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := pgx.Identifier{prefix + "_" + hex.EncodeToString(b)}
	PostgresExec(t, admin, "CREATE DATABASE "+name.Sanitize())
	t.Cleanup(func() { PostgresExec(t, admin, "DROP DATABASE IF EXISTS "+name.Sanitize()+" WITH (FORCE)") })
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	u.Path = "/" + name[0]
	return u.String()
}

// PostgresExec runs one statement on a connection of its own to
// databaseURL.
func PostgresExec(t testing.TB, databaseURL, statement string, args ...any) {
	t.Helper()
	// Not t.Context(): cleanups run after it is cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		t.Fatalf("connect to PostgreSQL (%s; is the server of scripts/postgres.sh running?): %v", PostgresEnv, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, statement, args...); err != nil {
		t.Fatalf("%s: %v", statement, err)
	}
}

// RedisURL is the test Redis's URL.
func RedisURL(t testing.TB) string {
	t.Helper()
	return fromEnv(t, RedisEnv, "Redis", "scripts/redis.sh", "redis-server")
}

// fromEnv returns the URL in the variable env, or fails the test saying how
// to start the server that script gives (Debian's package pkg).
func fromEnv(t testing.TB, env, server, script, pkg string) string {
	t.Helper()
	u := os.Getenv(env)
	if u == "" {
		t.Fatalf("%s is not set: this test needs a real %s. Start a throwaway one on 127.0.0.1 with\n"+
			"\teval \"$(%s)\"\n"+
			"(from the repository root; it installs Debian's %s if missing; scripts/test.sh does it), then run the test again",
			env, server, script, pkg)
	}
	return u
}
