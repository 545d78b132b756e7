package dispatch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/passthrough"
)

// Caller sends one request to an upstream with exactly the given headers
// and returns its raw response; notifications the upstream sends while
// answering go to onNotification. *upstream.Client is one.
type Caller interface {
	Call(ctx context.Context, req jsonrpc.Message, headers http.Header, onNotification func(jsonrpc.Message)) (jsonrpc.Message, error)
}

// Credentials give an upstream's base headers (spec §2.1): its credentials
// and static headers. *auth.UpstreamAuth is one.
type Credentials interface {
	BaseHeaders(ctx context.Context) ([]passthrough.Header, error)
	// Invalidate drops a cached token after the upstream refused it.
	Invalidate()
}

// Catalogue is what one upstream offers: raw items as the upstream sent
// them, names not yet prefixed, and what it announced of itself when
// mcpgate's discovery session opened.
type Catalogue struct {
	Tools, Resources, ResourceTemplates, Prompts []json.RawMessage
	// Capabilities is the capabilities object of the upstream's initialize
	// result, raw; nil when not known (a catalogue read from the store,
	// before this instance has connected), and then the lists that are not
	// empty stand for it.
	Capabilities json.RawMessage
	// Instructions is the instructions of the upstream's initialize result.
	Instructions string
	// Cache is the caching hint each of its list results gave (ttlMs and
	// cacheScope, MCP 2026-07-28 server/utilities/caching), by list
	// method; a list that gave none is absent (and a catalogue read from
	// the store has none).
	Cache map[string]CacheHint
}

// CacheHint is a result's ttlMs and cacheScope (MCP 2026-07-28
// server/utilities/caching): how long a client may keep it, and whether
// only the requesting user's client may ("private") or anyone ("public").
type CacheHint struct {
	TTLMs int
	Scope string
}

// Route is one registered upstream as dispatch sees it.
type Route struct {
	ID, Name, Slug string
	// Upstream is what the passthrough engine needs to know of it.
	Upstream passthrough.Upstream
	// Allowlist is the upstream's own passthrough list, compiled; nil
	// inherits the global list (spec §3).
	Allowlist   *passthrough.Allowlist
	Credentials Credentials
	// Caller is nil while the upstream is unavailable; Unavailable says why.
	Caller      Caller
	Unavailable string
	Catalogue   Catalogue
	// Dial opens a session of the upstream's own for one client of the 1:1
	// relay; nil when the upstream cannot be relayed to (disabled, or its
	// credentials unreadable).
	Dial Dialer
	// Endpoint identifies where Dial connects, opaquely (EndpointOf): a
	// relay session opened to another endpoint cannot go on, since its
	// upstream session lives there. It holds no URL, so that nothing that
	// prints a Route can tell a client where an upstream lives.
	Endpoint string
	// AssertionAudience is the aud of the identity assertion mcpgate adds
	// to every request it forwards there for a client (the upstream's URL,
	// docs/identity-assertion.md); "" when the upstream asked for none.
	AssertionAudience string
}

// EndpointOf returns the Route.Endpoint of an upstream at rawURL over
// transport: equal for equal inputs, and naming neither.
func EndpointOf(transport, rawURL string) string {
	sum := sha256.Sum256([]byte(transport + "\x00" + rawURL))
	return hex.EncodeToString(sum[:16])
}

// Dialer opens a dedicated upstream session for the 1:1 relay: initialize
// is the relayed client's initialize params, headers gives the headers of
// every request the session makes for itself (initialize, its listening
// stream, re-initialization, its end), called for each so that they carry
// the credentials in force then (upstream.Options.Headers), and onMessage
// receives what the upstream sends outside any call — notifications, and
// requests for the client. *upstream.Client, opened in relay mode, is the
// RelayConn.
type Dialer func(ctx context.Context, initialize json.RawMessage, headers func(context.Context) (http.Header, error), onMessage func(jsonrpc.Message)) (RelayConn, error)

// RelayConn is one upstream session of the 1:1 relay.
type RelayConn interface {
	Caller
	// Notify sends a client's notification on.
	Notify(ctx context.Context, msg jsonrpc.Message, headers http.Header) error
	// Respond sends a client's answer to a request of the upstream's.
	Respond(ctx context.Context, resp jsonrpc.Message, headers http.Header) error
	// InitializeResult is the upstream's answer to initialize, raw.
	InitializeResult() json.RawMessage
	Close() error
}

// Index is the federated catalogue: every upstream's tools, resources,
// templates and prompts under prefixed names, and where each one lives. It
// is immutable; the registry builds a new one on every change.
type Index struct {
	routes    []*Route
	sep       string
	tools     map[string]entry // prefixed name -> owner
	prompts   map[string]entry
	resources map[string]entry // listed URI -> owner and the upstream's URI
	templates []template
	lists     map[string]json.RawMessage // method -> merged list result
	cache     map[string]CacheHint       // method -> the upstreams' hints merged (mergeCache); absent: none gave one
	conflicts []NameConflict
	// capabilities and instructions answer initialize.
	capabilities map[string]any
	instructions string
}

// NameConflict is a tool or prompt the index leaves out because another
// upstream's has its federated name: upstreams are taken in slug order, and
// the first keeps the name. The registry refuses the prefixes that make
// names collide; records stored before, or under another separator, can
// still. (Resources keep their upstream's URIs, unprefixed: two upstreams
// offering one URI, such as two replicas of a server, are not a conflict
// of names; the first keeps the URI and the others' are listed scoped, see
// scopedURI.)
type NameConflict struct {
	Kind string // "tool" or "prompt"
	Name string // the federated name
	// Kept is the upstream whose item is served under Name; Dropped the
	// one whose item is left out.
	Kept, Dropped *Route
}

// Conflicts returns the items left out because of a NameConflict.
func (ix *Index) Conflicts() []NameConflict { return ix.conflicts }

type entry struct {
	route *Route
	name  string // the upstream's own name, or URI
}

type template struct {
	route   *Route
	pattern *regexp.Regexp
}

// Route returns the upstream registered under id.
func (ix *Index) Route(id string) (*Route, bool) {
	for _, r := range ix.routes {
		if r.ID == id {
			return r, true
		}
	}
	return nil, false
}

// NewIndex builds the index of routes. A prefixed name is the upstream's
// slug, sep and the upstream's own name (GATEWAY_TOOL_NAME_SEPARATOR).
// Items without a usable name or URI are left out, and so is an upstream's
// repetition of a URI or URI template it listed already.
//
// A resource URI, or a template, that an earlier upstream in slug order
// listed already is listed under its scopedURI, so that the federated lists
// never show one uri twice and every upstream's resource stays readable:
// reads of the plain URI go to the first upstream, reads of the scoped one
// to its own.
func NewIndex(routes []*Route, sep string) *Index {
	ix := &Index{
		routes:    append([]*Route(nil), routes...),
		sep:       sep,
		tools:     map[string]entry{},
		prompts:   map[string]entry{},
		resources: map[string]entry{},
		lists:     map[string]json.RawMessage{},
	}
	sort.Slice(ix.routes, func(i, j int) bool { return ix.routes[i].Slug < ix.routes[j].Slug })
	var tools, prompts, resources, templates []json.RawMessage
	listedTemplates := map[string]*Route{} // uriTemplate as listed -> its upstream
	for _, r := range ix.routes {
		tools = append(tools, ix.prefixed(r, sep, "tool", r.Catalogue.Tools, ix.tools)...)
		prompts = append(prompts, ix.prefixed(r, sep, "prompt", r.Catalogue.Prompts, ix.prompts)...)
		for _, res := range r.Catalogue.Resources {
			uri, ok := jsonrpc.StringMember(res, "uri")
			if !ok {
				continue
			}
			listed, ok := listedAs(uri, r, func(u string) (*Route, bool) { e, ok := ix.resources[u]; return e.route, ok })
			if !ok {
				continue
			}
			item, err := prefixName(res, r.Slug, sep)
			if err == nil && listed != uri {
				item, err = jsonrpc.WithStringMember(item, "uri", listed)
			}
			if err != nil {
				continue
			}
			ix.resources[listed] = entry{route: r, name: uri}
			resources = append(resources, item)
		}
		for _, t := range r.Catalogue.ResourceTemplates {
			uriTemplate, ok := jsonrpc.StringMember(t, "uriTemplate")
			if !ok {
				continue
			}
			listed, ok := listedAs(uriTemplate, r, func(u string) (*Route, bool) { o, ok := listedTemplates[u]; return o, ok })
			if !ok {
				continue
			}
			item, err := prefixName(t, r.Slug, sep)
			if err == nil && listed != uriTemplate {
				item, err = jsonrpc.WithStringMember(item, "uriTemplate", listed)
			}
			if err != nil {
				continue
			}
			// A URI both templates match reads from the first upstream;
			// the scoped template's URIs reach r by their scope.
			listedTemplates[listed] = r
			ix.templates = append(ix.templates, template{route: r, pattern: templatePattern(uriTemplate)})
			templates = append(templates, item)
		}
	}
	ix.capabilities = federatedCapabilities(ix.routes)
	ix.instructions = federatedInstructions(ix.routes, sep)
	ix.cache = mergeCache(ix.routes)
	ix.lists["tools/list"] = listResult("tools", tools)
	ix.lists["prompts/list"] = listResult("prompts", prompts)
	ix.lists["resources/list"] = listResult("resources", resources)
	ix.lists["resources/templates/list"] = listResult("resourceTemplates", templates)
	return ix
}

func (ix *Index) prefixed(r *Route, sep, kind string, items []json.RawMessage, into map[string]entry) []json.RawMessage {
	var out []json.RawMessage
	for _, item := range items {
		name, ok := jsonrpc.StringMember(item, "name")
		if !ok || name == "" {
			continue
		}
		full := r.Slug + sep + name
		if owner, taken := into[full]; taken {
			if owner.route != r { // a name repeated in one upstream's own list is its own affair
				ix.conflicts = append(ix.conflicts, NameConflict{Kind: kind, Name: full, Kept: owner.route, Dropped: r})
			}
			continue
		}
		p, err := jsonrpc.WithStringMember(item, "name", full)
		if err != nil {
			continue
		}
		into[full] = entry{route: r, name: name}
		out = append(out, p)
	}
	return out
}

func prefixName(item json.RawMessage, slug, sep string) (json.RawMessage, error) {
	name, ok := jsonrpc.StringMember(item, "name")
	if !ok {
		return item, nil
	}
	return jsonrpc.WithStringMember(item, "name", slug+sep+name)
}

func listResult(key string, items []json.RawMessage) json.RawMessage {
	if items == nil {
		items = []json.RawMessage{}
	}
	b, _ := json.Marshal(map[string][]json.RawMessage{key: items})
	return b
}

// templatePattern turns an RFC 6570 URI template into a pattern matching the
// URIs it expands to: each {expression} matches one or more characters up
// to the next literal ({+var} and {#var} may also match slashes).
func templatePattern(t string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for {
		open := strings.IndexByte(t, '{')
		if open < 0 {
			b.WriteString(regexp.QuoteMeta(t))
			break
		}
		close := strings.IndexByte(t[open:], '}')
		if close < 0 {
			b.WriteString(regexp.QuoteMeta(t))
			break
		}
		b.WriteString(regexp.QuoteMeta(t[:open]))
		expr := t[open+1 : open+close]
		if strings.HasPrefix(expr, "+") || strings.HasPrefix(expr, "#") {
			b.WriteString(".+")
		} else {
			b.WriteString("[^/?#]+")
		}
		t = t[open+close+1:]
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// resourceRoute returns the upstream serving uri and the URI that upstream
// knows it by: the one listing it (under a scoped URI, the upstream it
// scopes, with its own URI), else the upstream a scopedURI names, else the
// first whose template matches uri.
func (ix *Index) resourceRoute(uri string) (*Route, string, bool) {
	if e, ok := ix.resources[uri]; ok {
		return e.route, e.name, true
	}
	if slug, own, ok := parseScopedURI(uri); ok {
		for _, r := range ix.routes {
			if r.Slug == slug {
				return r, own, true
			}
		}
	}
	for _, t := range ix.templates {
		if t.pattern.MatchString(uri) {
			return t.route, uri, true
		}
	}
	return nil, "", false
}

// named returns the owner of a tool or prompt by its prefixed name: the
// catalogue's (table's) entry, else, for a name that begins with an
// upstream's prefix (the longest, should two), that upstream with the rest
// of the name. A tool the catalogue does not list (listed since the last
// listing, or one the upstream does not list) is then the upstream's to
// answer, as it would answer a client of its own.
func (ix *Index) named(table map[string]entry, name string) (entry, bool) {
	if e, ok := table[name]; ok {
		return e, true
	}
	var best entry
	for _, r := range ix.routes {
		rest, ok := strings.CutPrefix(name, r.Slug+ix.sep)
		if ok && rest != "" && (best.route == nil || len(r.Slug) > len(best.route.Slug)) {
			best = entry{route: r, name: rest}
		}
	}
	return best, best.route != nil
}
