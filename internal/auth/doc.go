// Package auth authenticates clients to mcpgate and holds mcpgate's own
// credentials for upstream MCP servers.
//
// It has three parts:
//   - client tokens: [JWT] mints and verifies the HS256 tokens clients send
//     to mcpgate in the AUTH_HEADER_NAME header, read with [BearerToken];
//   - credentials at rest: [Sealer] encrypts upstream credentials with a key
//     derived from AUTH_ENCRYPTION_SECRET before they are stored;
//   - upstream credentials: [Credentials] are what an upstream is registered
//     with, and [UpstreamAuth] turns them into the base headers of spec §2
//     (mcpgate's own headers for the upstream), fetching and caching OAuth
//     tokens where needed.
//
// Secrets never appear in errors or logs: messages name the field or the
// setting, never the value, and [Credentials.Redacted] is the form to show.
package auth
