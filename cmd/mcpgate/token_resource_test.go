package main

import "testing"

// TestTokenUnderResourceURLIsForThatResource: without JWT_AUDIENCE, a token
// minted while MCP_RESOURCE_URL is set names that resource as its aud, so
// that the gateway's audience check (RFC 8707) passes it.
func TestTokenUnderResourceURLIsForThatResource(t *testing.T) {
	code, stdout, stderr := runMcpgate(t, "", testEnviron(t, "JWT_SECRET_KEY="+tokenTestSecret, "MCP_RESOURCE_URL=https://gw.example.com"), "token", "--admin")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	verifyMinted(t, stdout, "https://gw.example.com")
}
