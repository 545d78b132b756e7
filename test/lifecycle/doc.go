// Package lifecycle holds black-box tests of the upstream lifecycle: a real
// mcpgate binary, real upstream MCP servers on 127.0.0.1 (mcptest's, and the
// TypeScript server-everything when MCPGATE_TEST_EVERYTHING names it), and
// only HTTP between them: refreshes during calls, upstreams that go away and
// come back, deletes racing refreshes, and what clients are told.
package lifecycle
