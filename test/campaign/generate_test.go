package campaign

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
)

// The generator draws a round's settings, upstreams and allowlists, and
// each request's header lines, from one seeded source, so that a seed
// replays a run. Every generated value carries a marker ("zz<n>zz", which
// no session id or token contains: those are upper-case or base64url) so
// that a client value is recognised wherever it turns up.

// gen is the campaign's source of randomness and of unique markers.
type gen struct {
	r    *rand.Rand
	next int
}

func newGen(seed uint64) *gen { return &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

func (g *gen) marker() string { g.next++; return fmt.Sprintf("zz%dzz", g.next) }

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

func pick[T any](g *gen, xs []T) T { return xs[g.r.IntN(len(xs))] }

// allowlistNames are the names allowlists are drawn from: ordinary ones in
// several casings, the special ones of spec §2 (Authorization,
// X-Upstream-Authorization, User-Agent), the never-forwarded set of §2.3,
// and names the strict rule (D1) refuses.
var allowlistNames = []string{
	"X-Tenant-Id", "x-tenant-id", "X-TENANT-ID", "X-Trace-Id", "x-trace-id", "X-Api-Key", "X-Custom-Auth",
	"X-Api-Token", "X-Proxy-User", "X-Injected", "X-Long", "X-Empty", "X-Ctl",
	"Authorization", "authorization", "AUTHORIZATION",
	"User-Agent", "user-agent", "USER-AGENT",
	"X-Upstream-Authorization", "x-upstream-authorization",
	"X-Authenticated-User", "X-Mcp-Session-Id", "Mcp-Session-Id", "Mcp-Protocol-Version", "Mcp-Method",
	"Mcp-Name", "Mcp-Param-Tool", "Te", "Keep-Alive", "Proxy-Connection", "Trailer", "Upgrade",
	"Content-Type", "Content-Length", "Host", "Transfer-Encoding", "Connection",
	"X-Odd_Name", "X.Dot", "X-Tenant-Id\n", "X Space", "Ünï", "",
}

// clientNames are the names of generated client headers. Names the front
// door itself reads to frame the request (Host, Content-Length,
// Transfer-Encoding, Connection, Upgrade, Content-Type, Accept,
// Mcp-Session-Id, Mcp-Protocol-Version, Origin, Sec-WebSocket-*) are left
// out: sending them would test the transport's framing, not passthrough.
var clientNames = []string{
	"X-Tenant-Id", "x-tenant-id", "X-TENANT-ID", "X-Trace-Id", "X-Api-Key", "X-Custom-Auth", "X-Api-Token",
	"X-Proxy-User", "X-Injected", "X-Long", "X-Empty", "X-Ctl",
	"Authorization", "authorization", "User-Agent", "user-agent",
	"X-Upstream-Authorization", "x-upstream-authorization", "X-UPSTREAM-AUTHORIZATION",
	"X-Authenticated-User", "X-Mcp-Session-Id", "Mcp-Method", "Mcp-Name", "Mcp-Param-Tool",
	"Te", "Keep-Alive", "Proxy-Connection", "Trailer",
	"X-Odd_Name", "X.Dot", "X!#$%&'*+^`|~",
}

// oddNames are header names no HTTP server should accept; Go's answers 400.
var oddNames = []string{"X Space", "Ünï", "X-Tenant-Id\x00", "X(Paren)", "X-Tenant-Id ", "", "X\x7fDel"}

// value draws a header value around marker m, from plain to hostile.
func (g *gen) value(m string) string {
	k := g.r.IntN(20)
	if g.chance(0.6) {
		k = 19 // most values are plain, so that most requests get through
	}
	switch k {
	case 0:
		return "  " + m + "  " // blanks Go's parser trims
	case 1:
		return "a\t" + m + "\tb" // TAB survives sanitising
	case 2:
		return "a" + string(rune(g.r.IntN(0x20))) + m // a control byte
	case 3:
		return "a\x7f" + m // DEL (D2)
	case 4:
		return "a\r" + m // a bare CR
	case 5:
		return "a-" + m + "\r\nX-Injected: inj-" + g.marker() // CRLF injection: a second header line
	case 6:
		return "a-" + m + "\nX-Injected: inj-" + g.marker() // bare LF injection
	case 7:
		return "a-" + m + "\r\n folded-" + g.marker() // obs-fold
	case 8:
		return m + strings.Repeat("é", 4000+g.r.IntN(400)) // longer than 4096 code points, not bytes
	case 9:
		return m + strings.Repeat("x", 4000+g.r.IntN(400))
	case 10:
		return "日本語-" + m
	case 11:
		return "\u00a0" + m + "\u3000" // Unicode white space, trimmed by sanitising
	case 12:
		return "caf\xe9-" + m // a Latin-1 byte (obs-text), not UTF-8
	case 13:
		return "" // empty
	case 14:
		return "\u00a0\u2003" // white space only: empty once sanitised
	case 15:
		return "Bearer up-" + m
	case 16:
		return "Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+m))
	case 17:
		return m + "\x00tail" // NUL
	default:
		return "v-" + m
	}
}

// clientLines draws a request's header lines: ordinary and odd names,
// hostile values, and the same name twice in different cases.
func (g *gen) clientLines() []string {
	n := g.r.IntN(6)
	var lines []string
	for range n {
		name := pick(g, clientNames)
		if g.chance(0.03) {
			name = pick(g, oddNames)
		}
		lines = append(lines, name+": "+g.value(g.marker()))
		if g.chance(0.15) { // a duplicate in another case, later
			lines = append(lines, strings.ToLower(name)+": "+g.value(g.marker()))
		}
	}
	return lines
}

// allowlist draws a list of 0-5 names.
func (g *gen) allowlist() []string {
	list := []string{}
	for range g.r.IntN(6) {
		list = append(list, pick(g, allowlistNames))
	}
	return list
}

// roundSettings are a round's environment settings and their model.
type roundSettings struct {
	Env   map[string]string
	Model modelSettings
}

// settings draws a round's settings.
func (g *gen) settings() roundSettings {
	m := modelSettings{
		EnableHeaderPassthrough:    g.chance(0.85),
		EnableOverwriteBaseHeaders: g.chance(0.5),
		Source:                     pick(g, []string{"env", "db", "merge"}),
		ProxyUserHeader:            pick(g, []string{"X-Authenticated-User", "X-Authenticated-User", "X-Tenant-Id", "X-Proxy-User"}),
		AuthHeaderName:             pick(g, []string{"Authorization", "Authorization", "Authorization", "authorization", "X-Api-Token", "X-Tenant-Id", "X-Upstream-Authorization", "X-Upstream-Authorization-Tenant"}),
		AuthRequired:               g.chance(0.75),
	}
	// The env list, valid names only: an invalid one is a start-up error
	// or a warning, which the admin API's lists test anyway.
	env := []string{}
	for range g.r.IntN(4) {
		if n := pick(g, allowlistNames); validName.MatchString(n) {
			env = append(env, n)
		}
	}
	m.DefaultPassthroughHeaders = env
	var envValue string
	if g.chance(0.5) {
		b, _ := json.Marshal(env)
		envValue = string(b)
	} else {
		envValue = strings.Join(env, ",") // spec §1: a comma list, empty parts dropped
		if g.chance(0.3) {
			envValue = "," + envValue + ",,"
		}
	}
	if strings.TrimSpace(envValue) == "" {
		// spec §1 gives the default; an empty value is read as unset (the
		// setting's documentation, as ContextForge does), "[]" is empty.
		m.DefaultPassthroughHeaders = []string{"X-Tenant-Id", "X-Trace-Id"}
	}
	return roundSettings{Model: m, Env: map[string]string{
		"ENABLE_HEADER_PASSTHROUGH":     fmt.Sprint(m.EnableHeaderPassthrough),
		"ENABLE_OVERWRITE_BASE_HEADERS": fmt.Sprint(m.EnableOverwriteBaseHeaders),
		"DEFAULT_PASSTHROUGH_HEADERS":   envValue,
		"PASSTHROUGH_HEADERS_SOURCE":    m.Source,
		"AUTH_HEADER_NAME":              m.AuthHeaderName,
		"AUTH_REQUIRED":                 fmt.Sprint(m.AuthRequired),
		"PROXY_USER_HEADER":             m.ProxyUserHeader,
	}}
}

// upstreamPlan is how one upstream is registered: its auth fields for the
// admin API and the base headers mcpgate must send with them.
type upstreamPlan struct {
	Name   string
	Fields map[string]any
	Auth   upstreamAuth
}

// upstream draws an upstream's credentials.
func (g *gen) upstream(name string) upstreamPlan {
	p := upstreamPlan{Name: name, Fields: map[string]any{}}
	switch pick(g, []string{"none", "bearer", "basic", "headers"}) {
	case "none":
		p.Auth = upstreamAuth{Type: "none"}
	case "bearer":
		tok := "up-token-" + g.marker()
		p.Fields = map[string]any{"auth_type": "bearer", "auth_token": tok}
		p.Auth = upstreamAuth{Type: "bearer", Base: headerSet{{"Authorization", "Bearer " + tok}}}
	case "basic":
		user, pass := "user"+g.marker(), "pass"+g.marker()
		p.Fields = map[string]any{"auth_type": "basic", "auth_username": user, "auth_password": pass}
		p.Auth = upstreamAuth{Type: "basic", Base: headerSet{{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}}
	case "headers":
		var hs []map[string]string
		var base headerSet
		for range 1 + g.r.IntN(2) {
			name := pick(g, []string{"X-Api-Key", "X-Tenant-Id", "Authorization", "X-Custom-Auth", "x-trace-id"})
			if base.has(name) {
				continue
			}
			v := "base-" + g.marker()
			hs = append(hs, map[string]string{"key": name, "value": v})
			base.set(name, v)
		}
		p.Fields = map[string]any{"auth_type": "authheaders", "auth_headers": hs}
		p.Auth = upstreamAuth{Type: "headers", Base: base}
	}
	return p
}

// optionalList is an upstream's own list: Set false is null (inherit).
type optionalList struct {
	Set  bool
	List []string
}

func (g *gen) upstreamList() optionalList {
	switch g.r.IntN(5) {
	case 0, 1:
		return optionalList{}
	case 2:
		return optionalList{Set: true, List: []string{}}
	default:
		return optionalList{Set: true, List: g.allowlist()}
	}
}
