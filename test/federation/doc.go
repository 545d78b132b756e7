// Package federation holds black-box tests of federation with the whole of
// MCP: a real mcpgate binary in front of real upstream MCP servers on
// 127.0.0.1, and real clients. The comparison battery runs the TypeScript
// SDK's client (Node 22) against the TypeScript server-everything directly
// and through /mcp, /sse and /ws and compares the answers; the isolation
// tests put two go-sdk clients on one go-sdk upstream at once and check
// that nothing of one reaches the other.
package federation
