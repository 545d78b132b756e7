package federation

import (
	"fmt"
	"os"
	"testing"

	"github.com/mcpgate/mcpgate/test/internal/gatewaytest"
)

// mcpgateBinary is the mcpgate that TestMain built for every test: the
// package's one variable, as TestMain has no other way to hand it over.
var mcpgateBinary string

func TestMain(m *testing.M) {
	bin, remove, err := gatewaytest.Build(raceEnabled)
	if err != nil {
		fmt.Fprintf(os.Stderr, "federation tests: build mcpgate: %v\n", err)
		os.Exit(1)
	}
	mcpgateBinary = bin
	code := m.Run()
	remove()
	os.Exit(code)
}

// start runs mcpgate with the harness's settings and extra ones.
func start(t *testing.T, extra map[string]string) *gatewaytest.Gateway {
	t.Helper()
	settings := gatewaytest.Settings(t)
	for k, v := range extra {
		settings[k] = v
	}
	return gatewaytest.Start(t, mcpgateBinary, settings)
}
