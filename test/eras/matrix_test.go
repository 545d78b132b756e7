package eras

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/test/internal/everything"
	"github.com/mcpgate/mcpgate/test/internal/gatewaytest"
)

const (
	// EnvTSSDK2 names the npm folder holding the TypeScript SDK v2 packages
	// @modelcontextprotocol/client and @modelcontextprotocol/server
	// (scripts/conformance.sh ts-sdk2-dir prints it; scripts/test.sh sets it).
	EnvTSSDK2 = "MCPGATE_TEST_TS_SDK2"
	// EnvEverythingServer names the go-sdk conformance everything-server
	// binary (scripts/conformance.sh installs it as DIR/bin/everything-server;
	// scripts/test.sh sets it).
	EnvEverythingServer = "MCPGATE_TEST_EVERYTHING_SERVER"
	// EnvReport, set to 1, makes TestMatrix log the matrix and pass
	// whatever it shows: for landing the matrix before mcpgate speaks every
	// era. Unset, a failing cell fails the test.
	EnvReport = "MCPGATE_ERAS_REPORT"
	// EnvCells, if set, is a regular expression: only the cells whose
	// "client × upstream × door" it matches run (for example
	// "TS SDK v2 .* × relay").
	EnvCells = "MCPGATE_ERAS_CELLS"

	// cellTimeout bounds every call of a cell, and the connect.
	cellTimeout = 8 * time.Second
	// notifyWait bounds every wait for a notification: the everything-server
	// updates its watched resource every 3 s.
	notifyWait = 6 * time.Second
	// startWait bounds the start of an upstream process.
	startWait = 30 * time.Second
	// tsClientTimeout bounds one run of the TypeScript client (one cell).
	tsClientTimeout = 2 * time.Minute
)

// features are the columns of a cell, in the order they run.
var features = []string{"era", "call", "progress", "sampling", "elicitation", "list_changed", "subscription", "cancellation"}

// outcome is one feature of one cell.
type outcome struct {
	Status string // pass, fail or n/a
	Reason string // one line, for fail and n/a
}

func pass() outcome { return outcome{Status: "pass"} }
func fail(format string, a ...any) outcome {
	return outcome{"fail", oneLine(fmt.Sprintf(format, a...))}
}
func notApplicable(format string, a ...any) outcome {
	return outcome{"n/a", oneLine(fmt.Sprintf(format, a...))}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// door is one of mcpgate's two ways to an upstream.
type door struct {
	Name     string // "/mcp" or "relay"
	Endpoint string
	Prefix   string // what mcpgate puts before the upstream's tool names
}

// cell is what a client runner needs for one cell.
type cell struct {
	Door   door
	Up     *upstream
	Token  string // mcpgate's client token
	Tenant string // the X-Tenant-Id the client sends; the upstream must see it
	Region string // the cell's own argument value, how the recorder finds its calls
}

// clientKind is one row group of the matrix: a client at a revision.
type clientKind struct {
	Name string
	Era  string
	Run  func(t *testing.T, c cell) map[string]outcome
}

// result is one cell's outcomes.
type result struct {
	Client, Upstream, Door string
	Outcomes               map[string]outcome
}

// TestMatrix runs every client against every upstream through both of
// mcpgate's doors and prints the matrix; see the package comment.
func TestMatrix(t *testing.T) {
	node := everything.Node(t)
	sdk2 := requireEnvPath(t, EnvTSSDK2, "node_modules/@modelcontextprotocol/client/package.json")
	everythingServer := requireEnvPath(t, EnvEverythingServer, "")

	clients := []clientKind{
		{"go-sdk 2025-06-18", "2025-06-18", goClient("2025-06-18")},
		{"go-sdk 2025-11-25", "2025-11-25", goClient("2025-11-25")},
		{"go-sdk 2026-07-28", "2026-07-28", goClient("2026-07-28")},
		{"TS SDK v2 2026-07-28", "2026-07-28", tsClient(node, sdk2)},
	}
	upstreams := []func(t *testing.T) *upstream{
		func(t *testing.T) *upstream { return startGoUpstream(t, "2025-06-18") },
		func(t *testing.T) *upstream { return startGoUpstream(t, "2025-11-25") },
		func(t *testing.T) *upstream { return startGoUpstream(t, "2026-07-28") },
		func(t *testing.T) *upstream { return startEverythingServer(t, everythingServer) },
		func(t *testing.T) *upstream { return startTSUpstream(t, node, sdk2) },
	}

	var only *regexp.Regexp
	if expr := os.Getenv(EnvCells); expr != "" {
		var err error
		if only, err = regexp.Compile(expr); err != nil {
			t.Fatalf("%s=%q: %v", EnvCells, expr, err)
		}
	}
	var mu sync.Mutex
	var results []result
	start := time.Now()
	t.Run("upstreams", func(t *testing.T) {
		for i, startUpstream := range upstreams {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				up := startUpstream(t)
				// One mcpgate per upstream: the cells of different
				// upstreams run at once without seeing each other's
				// notifications; the cells of one upstream run in turn.
				gw := gatewaytest.StartWith(t, mcpgateBinary, map[string]string{
					"DEFAULT_PASSTHROUGH_HEADERS": `["X-Tenant-Id"]`,
				})
				doors, err := register(t, gw, up)
				for _, ck := range clients {
					ds := doors
					if ck.Era == up.Era {
						// The control: the client straight to the upstream,
						// which proves the harness on the pairs that speak
						// one revision.
						ds = append([]door{{Name: "direct", Endpoint: up.URL}}, doors...)
					}
					for di, d := range ds {
						if only != nil && !only.MatchString(ck.Name+" × "+up.Name+" × "+d.Name) {
							continue
						}
						region := fmt.Sprintf("r%d-%s-%d", i, strings.NewReplacer(" ", "", ".", "").Replace(ck.Name), di)
						var out map[string]outcome
						if err != nil && d.Name != "direct" {
							out = allFail(err.Error())
						} else {
							out = ck.Run(t, cell{Door: d, Up: up, Token: gw.Token, Tenant: "tenant-" + region, Region: region})
						}
						if o := out["list_changed"]; up.Tools.AddToolChangesOnce && d.Name == "/mcp" && o.Status == "fail" {
							// The upstream's trigger re-adds the same tool: only its
							// first call, in whichever cell ran first, changes the
							// list, and /mcp tells its clients of a federated list
							// only when its content changed (docs/federation.md).
							// The relay passes the upstream's notification 1:1.
							out["list_changed"] = notApplicable("the upstream's %s changed no list this time (it re-adds one tool); /mcp tells of content changes only: %s", up.Tools.AddTool, o.Reason)
						}
						mu.Lock()
						results = append(results, result{ck.Name, up.Name, d.Name, out})
						mu.Unlock()
					}
				}
			})
		}
	})
	report(t, results, time.Since(start))
}

// register registers up with mcpgate and returns its two doors; an error
// says why the upstream could not be used.
func register(t *testing.T, gw *gatewaytest.Gateway, up *upstream) ([]door, error) {
	doors := []door{{Name: "/mcp", Endpoint: gw.URL + "/mcp"}, {Name: "relay"}}
	status, body := gw.Do(t, "POST", "/gateways", map[string]any{"name": "up", "url": up.URL, "transport": "STREAMABLEHTTP"})
	if status != http.StatusCreated {
		return doors, fmt.Errorf("registration: POST /gateways answered %d: %s", status, body)
	}
	var v gatewaytest.Upstream
	if err := json.Unmarshal(body, &v); err != nil || v.ID == "" {
		return doors, fmt.Errorf("registration: POST /gateways answered %s (%v)", body, err)
	}
	if v.Status != "available" {
		return doors, fmt.Errorf("registration: the upstream is %q: %s", v.Status, v.StatusReason)
	}
	doors[0].Prefix = v.Slug + "-" // GATEWAY_TOOL_NAME_SEPARATOR's default
	doors[1].Endpoint = gw.URL + "/gateways/" + v.ID + "/mcp"
	return doors, nil
}

func allFail(reason string) map[string]outcome {
	out := map[string]outcome{}
	for _, f := range features {
		out[f] = fail("%s", reason)
	}
	return out
}

// report prints the matrix, one line per cell, then every failing feature
// with its reason, then "N passed, M failed"; failures fail the test unless
// EnvReport is 1.
func report(t *testing.T, results []result, took time.Duration) {
	slices.SortFunc(results, func(a, b result) int {
		return strings.Compare(a.Client+"\x00"+a.Upstream+"\x00"+a.Door, b.Client+"\x00"+b.Upstream+"\x00"+b.Door)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "cross-era matrix (%s): client × upstream × door, features %s\n", took.Round(time.Second), strings.Join(features, " "))
	passed, failed, na, controlFailed := 0, 0, 0, 0
	var failures, skipped []string
	for _, r := range results {
		var marks []string
		for _, f := range features {
			o, ok := r.Outcomes[f]
			if !ok {
				o = fail("the client runner reported nothing")
			}
			switch o.Status {
			case "pass":
				passed++
				marks = append(marks, "ok")
			case "n/a":
				na++
				marks = append(marks, "--")
				skipped = append(skipped, fmt.Sprintf("  %s × %s × %s × %s: %s", r.Client, r.Upstream, r.Door, f, o.Reason))
			default:
				failed++
				if r.Door == "direct" {
					controlFailed++
				}
				marks = append(marks, "FAIL")
				failures = append(failures, fmt.Sprintf("  %s × %s × %s × %s: %s", r.Client, r.Upstream, r.Door, f, o.Reason))
			}
		}
		fmt.Fprintf(&b, "  %-22s %-28s %-5s %s\n", r.Client, r.Upstream, r.Door, strings.Join(marks, " "))
	}
	if len(skipped) > 0 {
		fmt.Fprintf(&b, "not applicable:\n%s\n", strings.Join(skipped, "\n"))
	}
	if len(failures) > 0 {
		fmt.Fprintf(&b, "failing:\n%s\n", strings.Join(failures, "\n"))
	}
	fmt.Fprintf(&b, "%d passed, %d failed (%d not applicable)", passed, failed, na)
	t.Log("\n" + b.String())
	if controlFailed > 0 {
		// Without mcpgate the pair speaks one revision and must work: a
		// failure there is the harness's (or an SDK's), in any mode.
		t.Errorf("%d failures on the direct door, client straight to upstream: the harness itself is wrong", controlFailed)
	}
	if failed > 0 {
		if os.Getenv(EnvReport) == "1" {
			t.Logf("%s=1: the %d failures above are reported, not failed", EnvReport, failed)
			return
		}
		t.Errorf("%d passed, %d failed: the failing cells are listed above (set %s=1 to report without failing)", passed, failed, EnvReport)
	}
}

// requireEnvPath returns the path in the environment variable name, which
// must exist (with rel under it when rel is not ""); without the variable
// the test is skipped, except in CI (CI=true), where that fails it.
func requireEnvPath(t *testing.T, name, rel string) string {
	t.Helper()
	p := os.Getenv(name)
	if p == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: scripts/test.sh installs it with scripts/conformance.sh and sets it", name)
		}
		t.Skipf("%s is not set (scripts/test.sh sets it)", name)
	}
	check := p
	if rel != "" {
		check = p + "/" + rel
	}
	if _, err := os.Stat(check); err != nil {
		t.Fatalf("%s=%s: %v", name, p, err)
	}
	return p
}
