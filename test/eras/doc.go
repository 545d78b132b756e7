// Package eras holds the cross-era matrix: MCP clients at 2025-06-18,
// 2025-11-25 and 2026-07-28 (the official go-sdk's client with a fixed
// revision, and the TypeScript SDK v2 client) against upstreams at
// 2025-06-18, 2025-11-25 and 2026-07-28 (go-sdk servers, stateful and
// stateless, the go-sdk conformance everything-server in stateless mode, and
// a TypeScript SDK v2 server), through a real mcpgate binary on both doors,
// the federated /mcp and the 1:1 relay /gateways/{id}/mcp. Every cell
// checks a tool call with its per-hop headers seen at the upstream,
// progress, sampling and elicitation mid-call, list_changed, a resource
// subscription and cancellation, and the test prints the matrix.
package eras
