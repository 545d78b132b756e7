package oidcprovider

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestTokensAreJWTsForTheResourceAndRotationPublishesBothKeys checks what
// the identity tests rely on: a client_credentials token is a JWT whose aud
// is the resource asked for, with the scope asked for, signed by a key in
// the provider's JWKS; after RotateKeys tokens carry the new kid and the
// JWKS holds the new key and the old one.
func TestTokensAreJWTsForTheResourceAndRotationPublishesBothKeys(t *testing.T) {
	agent := Client{ID: "agent", Secret: "agent-secret-for-tests-only", Scope: "mcp:tools mcp:read"}
	p := Start(t, agent)
	const resource = "http://127.0.0.1:1/mcp"

	header, claims := decode(t, p.Token(t, agent, "mcp:tools", resource))
	if claims["aud"] != resource || claims["iss"] != p.Issuer || claims["scope"] != "mcp:tools" || claims["sub"] != "agent" {
		t.Errorf("claims = %v, want aud %q, iss %q, scope mcp:tools, sub agent", claims, resource, p.Issuer)
	}
	first := header["kid"].(string)
	if kids := p.jwksKids(t); !slices.Equal(kids, []string{first}) {
		t.Errorf("JWKS kids = %v, want [%s]", kids, first)
	}

	second := p.RotateKeys(t)
	header, _ = decode(t, p.Token(t, agent, "mcp:tools", resource))
	if header["kid"] != second || second == first {
		t.Errorf("after rotation a token has kid %v, want the new %s (the old was %s)", header["kid"], second, first)
	}
	if kids := p.jwksKids(t); !slices.Equal(kids, []string{second, first}) {
		t.Errorf("JWKS kids after rotation = %v, want [%s %s]", kids, second, first)
	}
}

func decode(t *testing.T, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS compact token: %d parts", len(parts))
	}
	for i, into := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func (p *Provider) jwksKids(t *testing.T) []string {
	t.Helper()
	var disc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(t, p.Issuer+"/.well-known/openid-configuration", &disc)
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	getJSON(t, disc.JWKSURI, &set)
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

func getJSON(t *testing.T, u string, into any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}
