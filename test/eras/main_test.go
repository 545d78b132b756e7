package eras

import (
	"testing"

	"github.com/mcpgate/mcpgate/test/internal/gatewaytest"
)

// mcpgateBinary is the mcpgate that TestMain built for every test: the
// package's one variable, as TestMain has no other way to hand it over.
var mcpgateBinary string

func TestMain(m *testing.M) { gatewaytest.Main(m, raceEnabled, &mcpgateBinary, "cross-era matrix") }
