package dispatch

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// maxUpstreamInstructions bounds what mcpgate's instructions quote of one
// upstream's; maxInstructions bounds the quotes together, so that many
// upstreams cannot make every client's initialize answer large.
const (
	maxUpstreamInstructions = 2 << 10
	maxInstructions         = 16 << 10
	// minQuote is the least room worth quoting in: below it, a server's
	// instructions are counted as left out rather than cut to a stub.
	minQuote = 256
)

// initialize answers a client's initialize from ix, the federated catalogue
// in force as the client sees it: the revision negotiated, the capabilities the upstreams offer
// together (federatedCapabilities) and instructions naming them
// (federatedInstructions).
func (d *Dispatcher) initialize(ix *Index, msg jsonrpc.Message) jsonrpc.Message {
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	_ = json.Unmarshal(msg.Params, &p)
	version := protocol.Negotiate(p.ProtocolVersion)
	caps := maps.Clone(ix.capabilities)
	if !hasTasks(version) {
		delete(caps, "tasks") // no such capability before MCP 2025-11-25
	}
	r, err := json.Marshal(map[string]any{
		"protocolVersion": version,
		"capabilities":    caps,
		"serverInfo":      map[string]any{"name": d.cfg.ServerName, "version": d.cfg.ServerVersion},
		"instructions":    ix.instructions,
	})
	if err != nil { // only decoded JSON and strings go in
		return failure(jsonrpc.Errorf(jsonrpc.CodeInternalError, "initialize: encode the answer: %v", err))
	}
	return result(r)
}

// hasTasks reports whether revision v (one of protocol.Versions, newest
// first) is MCP 2025-11-25 or later, the first with tasks.
func hasTasks(v string) bool {
	versions := protocol.Versions()
	return slices.Index(versions, v) <= slices.Index(versions, protocol.Version20251125)
}

// federatedLists are the capabilities whose lists mcpgate federates. They
// are always announced, with listChanged true whatever the upstreams said:
// the lists are mcpgate's own, it sends their list_changed whenever they
// change, and an upstream registered (or back) after a client connected
// would otherwise stay hidden from it until it reconnected.
var federatedLists = []string{"tools", "resources", "prompts"}

// federatedCapabilities returns the union of what routes announced in their
// initialize results, as mcpgate's own capabilities: the federatedLists,
// and completions, logging and tasks when at least one upstream offers
// each, with every member any of them set (objects merged member by
// member, true over false: resources.subscribe only when some upstream
// supports subscriptions). An upstream whose announcement is not known (a
// catalogue read from the store) stands for the lists it has items in.
// Anything else (experimental, capabilities of later revisions) is left
// out: mcpgate would not know where to route its methods.
func federatedCapabilities(routes []*Route) map[string]any {
	caps := map[string]any{}
	for _, name := range federatedLists {
		caps[name] = map[string]any{}
	}
	for _, r := range routes {
		for name, v := range announcedCapabilities(r.Catalogue) {
			switch name {
			case "tools", "resources", "prompts", "completions", "logging", "tasks":
				if prev, ok := caps[name]; ok {
					v = union(prev, v)
				}
				caps[name] = v
			}
		}
	}
	for _, name := range federatedLists {
		if c, ok := caps[name].(map[string]any); ok {
			c["listChanged"] = true
		}
	}
	return caps
}

// announcedCapabilities decodes c's announced capabilities, each an object
// (a member that is not one counts as {}), or infers them from its lists.
func announcedCapabilities(c Catalogue) map[string]any {
	out := map[string]any{}
	if c.Capabilities == nil {
		for name, items := range map[string]int{"tools": len(c.Tools), "prompts": len(c.Prompts),
			"resources": len(c.Resources) + len(c.ResourceTemplates)} {
			if items > 0 {
				out[name] = map[string]any{}
			}
		}
		return out
	}
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(c.Capabilities, &raw) // not an object: nothing announced
	for name, v := range raw {
		var obj map[string]any
		if json.Unmarshal(v, &obj) != nil || obj == nil {
			obj = map[string]any{}
		}
		out[name] = obj
	}
	return out
}

// union merges b into a, decoded JSON values: objects member by member,
// booleans true over false; for any other pair a stays.
func union(a, b any) any {
	ao, aObj := a.(map[string]any)
	bo, bObj := b.(map[string]any)
	if aObj && bObj {
		out := maps.Clone(ao)
		for k, v := range bo {
			if prev, ok := out[k]; ok {
				v = union(prev, v)
			}
			out[k] = v
		}
		return out
	}
	if ab, ok := a.(bool); ok {
		if bb, ok := b.(bool); ok {
			return ab || bb
		}
	}
	return a
}

// federatedInstructions is mcpgate's instructions: the upstreams by name
// with the prefix of their tools and prompts, in slug order (routes'), and
// what each said in its own instructions, quoted under its name, each cut
// at maxUpstreamInstructions and all at maxInstructions together.
func federatedInstructions(routes []*Route, sep string) string {
	var b strings.Builder
	if len(routes) == 0 {
		return "mcpgate federates MCP servers behind one endpoint; none is registered at the moment."
	}
	b.WriteString("mcpgate federates these MCP servers behind one endpoint. Each server's tools and prompts are named " +
		"with its prefix: its tool \"x\" is \"<prefix>x\" here. Resources keep their server's URIs; a URI several servers " +
		"share is listed as it is for the first below and as mcpgate://<slug>/<URI> for the others, and any server's " +
		"resource can be read that way.\nServers:\n")
	for _, r := range routes {
		fmt.Fprintf(&b, "- %s: prefix %q, slug %q", r.Name, r.Slug+sep, r.Slug)
		if r.Caller == nil {
			b.WriteString(" (unavailable at the moment)")
		}
		b.WriteByte('\n')
	}
	quoted, left := 0, 0
	for _, r := range routes {
		text := strings.TrimSpace(r.Catalogue.Instructions)
		if text == "" {
			continue
		}
		if maxInstructions-quoted < minQuote {
			left++
			continue
		}
		text = cut(text, min(maxUpstreamInstructions, maxInstructions-quoted))
		quoted += len(text)
		fmt.Fprintf(&b, "\nInstructions of the server %s (prefix %q), as it gave them:\n%s\n", r.Name, r.Slug+sep, text)
	}
	if left > 0 {
		fmt.Fprintf(&b, "\n(The instructions of %d more servers are left out, for length.)\n", left)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// cut returns s cut to at most n bytes on a character boundary, saying so
// when it cut.
func cut(s string, n int) string {
	const mark = " […cut by mcpgate]"
	if len(s) <= n {
		return s
	}
	end := max(n-len(mark), 0)
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + mark
}
