// Package identity holds the end-to-end tests of mcpgate as an OAuth 2.1
// protected resource (the MCP authorization specification): the real
// mcpgate binary, a real OpenID provider (test/internal/oidcprovider) and a
// real MCP client performing the flow (the TypeScript SDK's), over loopback
// HTTP only.
package identity
