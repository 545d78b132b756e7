package campaign

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/gateway"
	"github.com/mcpgate/mcpgate/passthrough"
)

var (
	// The default is about 35 s with -race on a 2-core machine (about 150
	// requests a second), 10 s without (about 450 a second, one core).
	flagRequests = flag.Int("campaign.requests", 5000, "tools/call requests the wire campaign sends (10⁶ for the long run)")
	flagRound    = flag.Int("campaign.round", 150, "requests per gateway instance; each round draws new settings")
	flagSeed     = flag.Uint64("campaign.seed", 0, "the campaign's seed; 0 draws one (it is logged, to replay a run)")
)

const jwtSecret = "0123456789abcdef0123456789abcdef-campaign-only"

// TestWireCampaign is the randomised wire campaign: rounds of requests,
// each round a new mcpgate (SQLite in a temporary folder) with settings
// drawn at random, three upstreams with random credentials and allowlists
// on a raw-socket MCP server, and random header sets sent with a raw
// client through /rpc, /mcp, /sse, /ws and the 1:1 relay; sometimes an
// allowlist changes between a session's open and its call. What each
// upstream receives is checked against the model (model_test.go).
func TestWireCampaign(t *testing.T) {
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	c := &campaign{t: t, dir: t.TempDir(), seed: seed, g: newGen(seed), up: newRawUpstream(t), oracle: newOracle(t),
		byKind: map[string]int{}, rejected: map[string]int{}, byTransport: map[string]int{}, examples: map[string]string{}}
	j, err := auth.NewJWT([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	// The campaign registers upstreams (the admin API) and calls tools.
	if c.token, err = j.MintWith("campaign", 2*time.Hour, time.Now(), auth.MintOptions{Scopes: []string{config.DefaultJWTAdminScope}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// Stop early, and say so, rather than be killed by go test's -timeout.
	deadline, hasDeadline := t.Deadline()
	for roundNo := 0; c.tried < *flagRequests; roundNo++ {
		if hasDeadline && time.Until(deadline) < time.Minute {
			t.Logf("stopping after %d of %d requests: the test's -timeout is a minute away", c.tried, *flagRequests)
			break
		}
		c.runRound(roundNo, min(*flagRound, *flagRequests-c.tried))
		if t.Failed() && c.violations == 0 { // a harness failure: stop here
			return
		}
	}
	elapsed := time.Since(start)
	t.Logf("wire campaign, seed %d: %d requests tried in %d rounds (%d settings refused at start) in %s (%.0f/s): %d forwarded and checked, refused by the gateway as the model predicted %v; %d violations in %d requests",
		seed, c.tried, c.rounds, c.refusedSettings, elapsed.Round(time.Millisecond), float64(c.tried)/elapsed.Seconds(),
		c.checked, c.rejected, c.violations, c.failedRequests)
	t.Logf("by transport: %v", c.byTransport)
	for _, k := range slices.Sorted(maps.Keys(c.byKind)) {
		t.Logf("violation %s: %d", k, c.byKind[k])
	}
	for _, k := range slices.Sorted(maps.Keys(c.examples)) {
		t.Errorf("violation %s (%d times), first case, minimised:\n%s", k, c.byKind[k], c.examples[k])
	}
}

// campaign is one run's state and counts.
type campaign struct {
	t      *testing.T
	dir    string // where rounds keep their databases
	seed   uint64
	g      *gen
	up     *rawUpstream
	oracle string // the address of the parsing oracle
	token  string // the client's mcpgate token

	tried, checked, rounds, refusedSettings int
	cids                                    int            // the last correlation id
	rejected                                map[string]int // refused as the model predicted, by why
	violations                              int
	failedRequests                          int            // requests with a violation
	byKind                                  map[string]int // by violation key
	byTransport                             map[string]int
	examples                                map[string]string // by violation key: a minimised description
}

// round is one mcpgate instance with its upstreams and allowlists.
type round struct {
	c        *campaign
	no       int
	settings roundSettings
	addr     string
	admin    *http.Client
	// the global list as stored (spec §3)
	stored       []string
	storedExists bool
	upstreams    []*registered
}

type registered struct {
	plan upstreamPlan
	id   string
	list optionalList
}

// reqCase is one request of the campaign, complete enough to replay.
type reqCase struct {
	round     *round
	Transport string
	Upstream  int
	Open      []string // header lines at open (mcp, relay, sse, ws)
	Call      []string // header lines of the call (rpc, mcp, relay)
	AuthAt    int      // where the credential line goes among the lines
	Change    *change  // a configuration change between open and call
}

// change is an allowlist write: the global list (Upstream -1) or an
// upstream's. Before is what was in force, for replays.
type change struct {
	Upstream      int
	Before, After optionalList
}

func (c *campaign) runRound(no, n int) {
	t := c.t
	r := &round{c: c, no: no, settings: c.g.settings(), admin: &http.Client{Timeout: ioTimeout}}
	stop, err := r.start()
	if err != nil {
		// Only an AUTH_HEADER_NAME the engine treats specially may be
		// refused at start (D4: the credential header must not be one the
		// engine forwards or reads for itself); any other refusal of
		// settings the spec allows is a failure.
		var se *gateway.StartupError
		var pe *passthrough.SettingError
		names := errors.As(err, &se) && se.Setting == passthrough.EnvAuthHeaderName ||
			errors.As(err, &pe) && pe.Name == passthrough.EnvAuthHeaderName ||
			strings.Contains(err.Error(), passthrough.EnvAuthHeaderName)
		if names && specialAuthHeader(r.settings.Model) {
			c.refusedSettings++
			return
		}
		t.Fatalf("round %d: start mcpgate with %v: %v", no, r.settings.Env, err)
	}
	defer stop()
	defer r.admin.CloseIdleConnections()
	c.rounds++
	r.stored, r.storedExists = seededGlobal(r.settings.Model)
	if c.g.chance(0.5) {
		if !r.putGlobal(c.g.allowlist()) {
			return
		}
	}
	for i, name := range []string{"alpha", "bravo", "charlie"} {
		if !r.register(c.g.upstream(name), c.g.upstreamList(), i) {
			return
		}
	}
	for range n {
		rc := c.newCase(r)
		c.tried++
		if *flagRequests >= 50000 && c.tried%(*flagRequests/10) == 0 { // a long run says how far it is
			t.Logf("%d of %d requests, %d violations", c.tried, *flagRequests, c.violations)
		}
		c.run(rc)
		if t.Failed() && c.violations == 0 {
			return
		}
	}
}

// start runs mcpgate in this process on a loopback port.
func (r *round) start() (stop func(), err error) {
	t := r.c.t
	// A folder per round, removed when the round ends: a long run has
	// thousands of rounds, and t.TempDir would keep every database to the end.
	dir, err := os.MkdirTemp(r.c.dir, "round-")
	if err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(dir, "none.env")
	if err := os.WriteFile(envFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"DATABASE_URL":               "sqlite:///" + filepath.Join(dir, "mcpgate.db"),
		"JWT_SECRET_KEY":             jwtSecret,
		"AUTH_ENCRYPTION_SECRET":     "campaign-encryption-secret",
		"UPSTREAM_TIMEOUT":           "10s",
		"CATALOGUE_REFRESH_INTERVAL": "0",
		"SHUTDOWN_TIMEOUT":           "5s",
		"MCPGATE_ENV_FILE":           envFile,
	}
	maps.Copy(vars, r.settings.Env)
	cfg, err := config.Load(nil, func(name string) (string, bool) { v, ok := vars[name]; return v, ok })
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("MCPGATE_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, cfg, logger, "campaign")
	if err != nil {
		cancel()
		_ = os.RemoveAll(dir)
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		g.Close()
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("round %d: serve: %v", r.no, err)
		}
		g.Close()
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("round %d: %v", r.no, err)
		}
	}, nil
}

// adminDo sends an admin API request with the client token.
func (r *round) adminDo(method, path string, body any) (int, []byte) {
	t := r.c.t
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, "http://"+r.addr+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if r.settings.Model.AuthRequired {
		req.Header.Set(r.settings.Model.AuthHeaderName, "Bearer "+r.c.token)
	}
	resp, err := r.admin.Do(req)
	if err != nil {
		t.Fatalf("round %d: %s %s: %v", r.no, method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// storedList reads the list an admin API answer says is stored: the API
// trims names and drops empty ones, so the list in force is the one it
// echoes, not the one sent.
func storedList(out []byte) (optionalList, error) {
	var v struct {
		PassthroughHeaders *[]string `json:"passthrough_headers"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return optionalList{}, fmt.Errorf("read passthrough_headers in %s: %w", out, err)
	}
	if v.PassthroughHeaders == nil {
		return optionalList{}, nil
	}
	return optionalList{Set: true, List: *v.PassthroughHeaders}, nil
}

// putGlobal writes the global list (spec §3); a list the API refuses
// changes nothing, and is fine.
func (r *round) putGlobal(list []string) bool {
	status, out := r.adminDo("PUT", "/admin/config/passthrough-headers", map[string]any{"passthrough_headers": list})
	switch {
	case status == http.StatusOK:
		l, err := storedList(out)
		if err != nil {
			r.c.t.Errorf("round %d: PUT the global list: %v", r.no, err)
			return false
		}
		r.stored, r.storedExists = l.List, true
	case status == http.StatusUnprocessableEntity:
	default:
		r.c.t.Errorf("round %d: PUT the global list %q: HTTP %d %s", r.no, list, status, out)
		return false
	}
	return true
}

// putUpstreamList writes upstream i's list (null: inherit).
func (r *round) putUpstreamList(i int, l optionalList) bool {
	var v any
	if l.Set {
		v = l.List
	}
	u := r.upstreams[i]
	status, out := r.adminDo("PUT", "/gateways/"+u.id, map[string]any{"passthrough_headers": v})
	switch status {
	case http.StatusOK:
		stored, err := storedList(out)
		if err != nil {
			r.c.t.Errorf("round %d: PUT upstream %s's list: %v", r.no, u.plan.Name, err)
			return false
		}
		u.list = stored
	case http.StatusUnprocessableEntity:
	default:
		r.c.t.Errorf("round %d: PUT upstream %s's list %v: HTTP %d %s", r.no, u.plan.Name, l, status, out)
		return false
	}
	return true
}

// register adds upstream i; a list the API refuses is registered as null.
func (r *round) register(p upstreamPlan, l optionalList, i int) bool {
	body := map[string]any{"name": p.Name, "url": r.c.up.url(r.no*10 + i)}
	maps.Copy(body, p.Fields)
	if l.Set {
		body["passthrough_headers"] = l.List
	}
	status, out := r.adminDo("POST", "/gateways", body)
	if status == http.StatusUnprocessableEntity && l.Set {
		delete(body, "passthrough_headers")
		l = optionalList{}
		status, out = r.adminDo("POST", "/gateways", body)
	}
	var v struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Reason string `json:"status_reason"`
	}
	_ = json.Unmarshal(out, &v)
	if status != http.StatusCreated || v.Status != "available" {
		r.c.t.Errorf("round %d: register %v: HTTP %d %s", r.no, body, status, out)
		return false
	}
	stored, err := storedList(out)
	if err != nil {
		r.c.t.Errorf("round %d: register %s: %v", r.no, p.Name, err)
		return false
	}
	r.upstreams = append(r.upstreams, &registered{plan: p, id: v.ID, list: stored})
	return true
}

// newCase draws a request.
func (c *campaign) newCase(r *round) *reqCase {
	g := c.g
	rc := &reqCase{round: r, Transport: pick(g, transports), Upstream: g.r.IntN(len(r.upstreams)), AuthAt: g.r.IntN(8)}
	open, call := carries(rc.Transport)
	if open {
		rc.Open = g.clientLines()
	}
	if call {
		rc.Call = g.clientLines()
	}
	if g.chance(0.25) {
		ch := &change{Upstream: -1}
		if g.chance(0.7) {
			ch.Upstream = rc.Upstream
		}
		if ch.Upstream < 0 {
			ch.Before = optionalList{Set: true, List: r.stored}
			ch.After = optionalList{Set: true, List: g.allowlist()}
		} else {
			ch.Before = r.upstreams[ch.Upstream].list
			ch.After = g.upstreamList()
		}
		rc.Change = ch
	}
	return rc
}

// withAuth puts the credential line among lines at position at.
func (rc *reqCase) withAuth(lines []string) []string {
	s := rc.round.settings.Model
	if !s.AuthRequired {
		return lines
	}
	out := slices.Clone(lines)
	return slices.Insert(out, min(rc.AuthAt, len(out)), rc.authLine())
}

func (rc *reqCase) authLine() string {
	return rc.round.settings.Model.AuthHeaderName + ": Bearer " + rc.round.c.token
}

// apply writes the change's After list (or Before, to replay).
func (r *round) apply(ch *change, l optionalList) bool {
	if ch.Upstream < 0 {
		return r.putGlobal(l.List)
	}
	return r.putUpstreamList(ch.Upstream, l)
}

// outcome is what a case's check found.
type outcome struct {
	cid        string
	allowlist  []string
	parsed     map[string][]string // the headers the engine reads, as Go's server parsed them
	expected   headerSet
	accept     bool // the model's prediction: the gateway accepts the requests
	why        string
	ex         exchange
	err        error
	got        []rawLine
	forwarded  bool
	violations []violation
}

// run sends the case, checks it and counts the result.
func (c *campaign) run(rc *reqCase) {
	o := c.try(rc, false)
	if o.err != nil && !errors.Is(o.err, errHarness) {
		o.violations = append(o.violations, violation{Kind: "call-failed", Detail: o.err.Error()})
	}
	if errors.Is(o.err, errHarness) {
		c.t.Errorf("round %d: %v", rc.round.no, o.err)
		return
	}
	c.byTransport[rc.Transport]++
	if o.forwarded {
		c.checked++
	} else if !o.accept {
		c.rejected[o.why]++
	}
	if len(o.violations) > 0 {
		c.failedRequests++
	}
	for _, v := range o.violations {
		c.violations++
		c.byKind[v.key()]++
		if _, seen := c.examples[v.key()]; !seen && len(c.examples) < 12 {
			c.examples[v.key()] = c.describe(c.minimise(rc, v), v)
		}
	}
}

// errHarness marks a failure of the campaign's own machinery (the oracle,
// the admin API), as opposed to the gateway's.
var errHarness = errors.New("campaign harness")

// try sends the case once, with a fresh correlation id, and checks it.
// replay restores the change's Before list first.
func (c *campaign) try(rc *reqCase, replay bool) outcome {
	r := rc.round
	s := r.settings.Model
	up := r.upstreams[rc.Upstream]
	c.cids++ // not from the generator: replays must not change what the seed draws next
	o := outcome{cid: fmt.Sprintf("cid-%d", c.cids)}
	if replay && rc.Change != nil && !r.apply(rc.Change, rc.Change.Before) {
		o.err = fmt.Errorf("%w: restore the list before a replay", errHarness)
		return o
	}
	open, call := rc.withAuth(rc.Open), rc.withAuth(rc.Call)
	var auth []string
	if s.AuthRequired {
		auth = []string{rc.authLine()}
	}
	// The model's prediction: Go's server must accept every request that
	// carries the case's lines, and mcpgate must find the credential.
	o.accept = true
	hasOpen, hasCall := carries(rc.Transport)
	for _, part := range []struct {
		has, opening bool
		lines        []string
	}{{hasOpen, true, open}, {hasCall, false, call}} {
		if !part.has {
			continue
		}
		method := "POST"
		if part.opening && (rc.Transport == "sse" || rc.Transport == "relay-sse" || rc.Transport == "ws") {
			method = "GET"
		}
		parsed, err := c.parse(method, part.lines)
		if err != nil {
			o.err = err
			return o
		}
		switch {
		case parsed == nil:
			o.accept, o.why = false, "Go's HTTP server refuses these lines"
		case !credentialOK(s, parsed, c.token):
			o.accept, o.why = false, "mcpgate cannot find its credential (401)"
		}
		if part.opening == forwardsOpening(rc.Transport) {
			o.parsed = parsed
		}
	}
	path, tool := "/"+rc.Transport, up.plan.Name+"-echo"
	switch rc.Transport {
	case "sse":
		path = "/sse"
	case "relay":
		path, tool = "/gateways/"+up.id+"/mcp", "echo"
	case "relay-sse":
		path, tool = "/gateways/"+up.id+"/sse", "echo"
	}
	hook := func() error {
		if rc.Change != nil && !r.apply(rc.Change, rc.Change.After) {
			return fmt.Errorf("%w: apply the change", errHarness)
		}
		return nil
	}
	o.ex, o.err = drive(r.addr, rc.Transport, path, tool, o.cid, auth, open, call, hook)
	if errors.Is(o.err, errHarness) {
		return o
	}
	o.got, o.forwarded = c.up.call(o.cid)
	stageStatus := o.ex.CallStatus
	if hasOpen && (o.ex.OpenStatus < 200 || o.ex.OpenStatus > 299) && o.ex.OpenStatus != http.StatusSwitchingProtocols {
		stageStatus = o.ex.OpenStatus
	}
	if !o.accept {
		o.err = nil // the exchange is expected to fail
		if stageStatus < 400 || stageStatus > 499 {
			o.violations = append(o.violations, violation{Kind: "accepted-refusable",
				Detail: fmt.Sprintf("%s, but the gateway answered HTTP %d", o.why, stageStatus)})
		}
		if o.forwarded {
			o.violations = append(o.violations, violation{Kind: "forwarded-despite-refusal",
				Detail: "the upstream received the call of a request the model expects refused"})
		}
		return o
	}
	if o.err == nil && o.ex.Answer != "" {
		o.err = errors.New(o.ex.Answer)
	}
	if o.err == nil && (stageStatus < 200 || stageStatus > 299) {
		o.err = fmt.Errorf("HTTP %d", stageStatus)
	}
	if !o.forwarded {
		if o.err == nil {
			o.err = errors.New("the call succeeded but the upstream recorded no call with its correlation id")
		}
		return o
	}
	o.allowlist = effectiveAllowlist(s, r.stored, r.storedExists, up.list.List, up.list.Set)
	o.expected = expectedHeaders(s, o.allowlist, up.plan.Auth, newModelRequest(o.parsed))
	token := ""
	if s.AuthRequired {
		token = c.token
	}
	o.violations = append(o.violations, checkForwarded(o.expected, o.got, token)...)
	return o
}

// specialAuthHeader reports whether AUTH_HEADER_NAME names a header the
// engine reads for itself: X-Upstream-Authorization (spec §2.2) or a name
// of the never-forwarded set (§2.3) other than itself.
func specialAuthHeader(s modelSettings) bool {
	name := s.AuthHeaderName
	if strings.HasPrefix(strings.ToLower(name), "x-upstream-authorization") {
		return true
	}
	other := s
	other.AuthRequired = false // the name's own rule aside
	return neverForwarded(other, name)
}
