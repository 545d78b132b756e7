// Package tokens holds black-box tests of client authentication: a real
// mcpgate binary verifying tokens of a test identity provider (a JWKS on
// 127.0.0.1) and its own HS256 tokens, and what a client is told about a
// token it refuses.
package tokens
