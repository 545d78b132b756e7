// Package identity tests mcpgate's signed identity assertion end to end:
// the built binary, upstreams built on the go-sdk that verify it with the
// public verifier (github.com/mcpgate/mcpgate/assertion), a real reverse
// proxy that changes a header on the way, and a go-sdk client, all on
// loopback sockets, over SQLite and PostgreSQL.
package identity

import (
	"testing"

	"github.com/mcpgate/mcpgate/test/internal/gatewaytest"
)

// mcpgateBinary is the mcpgate that TestMain built for every test.
var mcpgateBinary string

func TestMain(m *testing.M) {
	gatewaytest.Main(m, raceEnabled, &mcpgateBinary, "identity assertion tests")
}
