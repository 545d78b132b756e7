package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/test/internal/everything"
)

// batteryTimeout bounds one run of the battery: every wait in it is
// bounded (12 s at most), and a front door that drops a feature costs
// those waits.
const batteryTimeout = 8 * time.Minute

// batteryTarget is one side of a comparison, as battery.mjs reads it.
type batteryTarget struct {
	Kind   string `json:"kind"` // streamable, sse or ws
	URL    string `json:"url"`
	Prefix string `json:"prefix,omitempty"`
}

type batteryPair struct {
	Name    string        `json:"name"`
	Direct  batteryTarget `json:"direct"`
	Through batteryTarget `json:"through"`
}

var summaryLine = regexp.MustCompile(`(?m)^(\d+) identical, (\d+) different$`)

// TestBatteryThroughEveryFrontDoor: the TypeScript SDK's client calls every
// tool, resource, resource template, prompt and completion that
// server-everything offers, with sampling, elicitation (form and URL) and
// roots answered, and exercises logging, subscriptions, tasks and
// cancellation — directly, and through mcpgate's /mcp, /sse and /ws with
// server-everything registered twice, over Streamable HTTP and over SSE.
// Every answer through mcpgate must be the server's own, modulo the name
// prefix and volatile fields (times, random ids).
func TestBatteryThroughEveryFrontDoor(t *testing.T) {
	node, sdk := everything.Node(t), everything.TSSDK(t)
	streamable := everything.Start(t, "streamableHttp")
	sse := everything.Start(t, "sse")
	gw := start(t, nil)
	for _, up := range []map[string]any{
		{"name": "evh", "url": streamable, "transport": "STREAMABLEHTTP"},
		{"name": "evs", "url": sse, "transport": "SSE"},
	} {
		if v := gw.Register(t, up); v.Status != "available" {
			t.Fatalf("server-everything %s registered as %q: %s", up["transport"], v.Status, v.StatusReason)
		}
	}
	ws := "ws" + strings.TrimPrefix(gw.URL, "http") + "/ws"
	direct := map[string]batteryTarget{
		"evh-": {Kind: "streamable", URL: streamable},
		"evs-": {Kind: "sse", URL: sse},
	}
	pairs := []batteryPair{
		// The control: the server against itself must compare identical, or
		// the battery's normalisation misses something volatile.
		{"control: Streamable HTTP directly twice", direct["evh-"], direct["evh-"]},
		{"Streamable HTTP upstream through /mcp", direct["evh-"], batteryTarget{"streamable", gw.URL + "/mcp", "evh-"}},
		{"SSE upstream through /mcp", direct["evs-"], batteryTarget{"streamable", gw.URL + "/mcp", "evs-"}},
		{"Streamable HTTP upstream through /sse", direct["evh-"], batteryTarget{"sse", gw.URL + "/sse", "evh-"}},
		{"Streamable HTTP upstream through /ws", direct["evh-"], batteryTarget{"ws", ws, "evh-"}},
	}
	config, err := json.Marshal(map[string]any{"sdk": sdk, "token": gw.Token, "pairs": pairs})
	if err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(t.TempDir(), "battery.json")
	if err := os.WriteFile(configPath, config, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), batteryTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("battery", "battery.mjs"), configPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("the battery ran for %s; its output:\n%s", time.Since(start).Round(time.Second), stdout.String())
	if runErr != nil {
		t.Fatalf("the battery did not run to its end: %v; its stderr:\n%s", runErr, stderr.String())
	}
	m := summaryLine.FindAllStringSubmatch(stdout.String(), -1)
	if len(m) == 0 {
		t.Fatalf("the battery printed no \"N identical, M different\" line; its stderr:\n%s", stderr.String())
	}
	last := m[len(m)-1]
	same, _ := strconv.Atoi(last[1])
	diff, _ := strconv.Atoi(last[2])
	if same == 0 {
		t.Errorf("the battery compared nothing: %s", last[0])
	}
	if strings.Contains(stdout.String(), "DIFF control:") {
		t.Errorf("the battery found differences between server-everything and itself: its normalisation misses a volatile field (the DIFF control lines above)")
	}
	if diff > 0 {
		// The DIFF lines again, last, so that a summary of the failure
		// (scripts/test.sh shows what precedes "--- FAIL") has them.
		var diffs []string
		lines := strings.Split(stdout.String(), "\n")
		for i, line := range lines {
			if strings.HasPrefix(line, "DIFF ") {
				diffs = append(diffs, lines[i:min(i+3, len(lines))]...) // with its direct: and through: lines
			}
		}
		t.Errorf("through mcpgate, %d answers differ from server-everything's own (%d identical):\n%s", diff, same, strings.Join(diffs, "\n"))
	}
}
