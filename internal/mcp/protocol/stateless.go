package protocol

// The facts of the stateless revision (Version20260728) that an upstream
// hop needs beyond its headers (headers.go): how it is discovered, what its
// results say, and which requests may be answered with a request for input.

// MethodDiscover asks a server for its revisions, capabilities and
// identity without a session (MCP 2026-07-28 server/discover). A server of
// that revision must implement it; an older one answers it with an error,
// or not as JSON-RPC at all.
const MethodDiscover = "server/discover"

// MethodListen opens the one long-lived request that carries a client's
// change notifications (MCP 2026-07-28 basic/patterns, subscriptions/listen),
// in place of the GET stream and resources/subscribe.
const MethodListen = "subscriptions/listen"

// NotificationAcknowledged is the first message on a listen stream: the
// subset of the asked-for notifications the server honours.
const NotificationAcknowledged = "notifications/subscriptions/acknowledged"

// MetaServerInfo is the member of a result's _meta in which a 2026-07-28
// server names itself on every response (MCP 2026-07-28 basic/index,
// "_meta").
const MetaServerInfo = MetaReservedPrefix + "serverInfo"

// ResultTypeInputRequired is the resultType of an InputRequiredResult: the
// server needs the answers to its inputRequests before it can complete the
// request, which the client then sends again with inputResponses and the
// requestState it was given (MCP 2026-07-28 basic/patterns/mrtr).
const ResultTypeInputRequired = "input_required"

// Stateless reports whether revision v has no session: no initialize, its
// metadata in every request's _meta.
func Stateless(v string) bool { return v == Version20260728 }

// MayRequireInput reports whether a request of method may be answered with
// an InputRequiredResult (MCP 2026-07-28 basic/patterns/mrtr: tools/call,
// prompts/get and resources/read).
func MayRequireInput(method string) bool {
	switch method {
	case "tools/call", "prompts/get", "resources/read":
		return true
	}
	return false
}
