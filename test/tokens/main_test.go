package tokens

import (
	"testing"

	"github.com/mcpgate/mcpgate/test/internal/gatewaytest"
)

// mcpgateBinary is the mcpgate that TestMain built for every test.
var mcpgateBinary string

func TestMain(m *testing.M) { gatewaytest.Main(m, raceEnabled, &mcpgateBinary, "token tests") }
