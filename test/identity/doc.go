// Package identity holds the end-to-end tests of mcpgate's identity
// features over loopback HTTP only, with the real mcpgate binary: the MCP
// authorization flow (mcpgate as an OAuth 2.1 protected resource) with a
// real OpenID provider (test/internal/oidcprovider) and a real MCP client
// performing it (the TypeScript SDK's), in authorization_test.go; and the
// signed identity assertion to upstreams.
package identity
