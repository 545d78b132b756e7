// Package upstream is mcpgate's client for one upstream MCP server: it sends
// raw JSON-RPC messages with per-request headers over Streamable HTTP or the
// legacy HTTP+SSE transport, and hands back responses and notifications raw.
//
// Messages stay jsonrpc.Message values with json.RawMessage params and
// results: unknown fields and content types reach the caller byte for byte,
// which a typed SDK client would not allow.
//
// # Headers
//
// A Call sends exactly the headers it is given (the passthrough engine's
// result, spec §2) plus the transport's own headers, which always win:
// Content-Type, Accept, Mcp-Session-Id and MCP-Protocol-Version, and towards
// a 2026-07-28 upstream Mcp-Method, Mcp-Name and Mcp-Param-*, computed for
// that hop from the message as sent (a caller's Accept-Encoding and
// Last-Event-ID are dropped too, because the HTTP
// transport owns them, and so are Host, Content-Length and the other
// connection headers Go writes itself). Every name goes out once, with one
// value, whatever its spelling (spec §2.4). A given User-Agent replaces Go's;
// a request without one carries mcpgate's own, ClientName/ClientVersion
// ("mcpgate/<version>"). Options.Headers (the upstream's own credentials)
// go only on the requests mcpgate makes for itself: server/discover,
// initialize, the event streams and subscriptions/listen, session
// re-initialization, answers to the upstream's pings and the final DELETE;
// never on a Call that does not carry them itself (spec §5). They are asked
// for anew for each such request, so an OAuth token refreshed since Connect
// is the one sent. A cancellation is sent on its call's behalf, with the
// call's headers, and so is the tools/list that learns a tool's schema for
// its Mcp-Param-* headers.
//
// # Sessions and connections
//
// The Client is the session layer: it rewrites ids per hop, tracks calls,
// routes the upstream's requests and attributes its notifications. It sits
// on a connection (connection.go), one implementation per transport
// (streamable.go, sse.go), which only carries messages; a new transport is
// a new connection, with nothing in the session layer to change.
//
// # One session, many clients
//
// Every caller of a Client shares one upstream session, so request ids and
// progress tokens from different callers may collide. Each request goes out
// with an id the Client chose (and, if it asks for progress, a progress token
// the Client chose); the caller's id and token are put back in what it
// receives.
//
// # Revisions
//
// Connect negotiates the revision per upstream (docs/revisions.md): it
// sends server/discover first and speaks the stateless 2026-07-28 revision
// when the upstream offers it (stateless.go: no session, params._meta and
// the per-hop headers computed for each request; mrtr.go: input requests
// fulfilled through the caller; listen.go: subscriptions/listen), and
// otherwise initializes asking for protocol.UpstreamVersion. Callers see
// the same Client either way.
//
// # Notifications
//
// Notifications about a call (progress, log messages) go to that call's
// onNotification callback, on the goroutine that called Call, in the order the
// upstream sent them, before Call returns. Notifications about the session
// (list_changed, resources/updated) and those that cannot be attributed go to
// Options.OnNotification. On Streamable HTTP they arrive on the call's own
// response stream, or, from servers that answer with plain JSON, on the
// listening GET stream (opened only when Options.OnNotification is set, and
// open before notifications/initialized is sent, so that what a server says
// on it upon that notification is not lost: streamable.go), where progress is matched to its call by token but cannot be ordered
// against the response. On the legacy transport everything arrives on the
// one shared event stream: progress is matched by its token, and a log
// message is given to the call only when it is the one call in flight. A
// 2026-07-28 upstream has no GET stream: its session notifications come on
// the one subscriptions/listen request the Client keeps open (listen.go),
// opened only when Options.OnNotification is set too.
package upstream
