// Package auth authenticates clients to mcpgate and holds mcpgate's own
// credentials for upstream MCP servers.
//
// It has three parts:
//   - client tokens: [Verifier] checks the tokens clients send to mcpgate in
//     the AUTH_HEADER_NAME header (read with [BearerToken]) and returns the
//     [Identity] they name: HS256 tokens, which [JWT] mints, and RS256,
//     ES256 and EdDSA tokens of an identity provider, whose keys come from
//     a PEM file or a [JWKS];
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
