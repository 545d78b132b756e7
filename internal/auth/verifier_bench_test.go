package auth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgate/mcpgate/internal/auth/authtest"
)

// BenchmarkVerify compares the algorithms, through the verified-token cache
// (a client's every request after its first) and without it (its first).
// Cached, all cost the same map lookup and revocation check: the hot path
// neither fetches nor parses keys. The JWKS is a real one on 127.0.0.1,
// read once at start.
func BenchmarkVerify(b *testing.B) {
	secret := testSecret(0)
	now := time.Now()
	claims := jwt.MapClaims{"iss": "https://idp", "sub": "alice", "aud": testAudience, "jti": "j", "iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(), "scope": "openid mcp:tools"}
	tokens := map[string]string{AlgHS256: sign(b, jwt.SigningMethodHS256, claims, secret)}
	var keys []authtest.Key
	for _, alg := range PublicKeyAlgorithms {
		k := authtest.NewKey(b, alg, "k-"+alg)
		keys = append(keys, k)
		tokens[alg] = k.Sign(b, claims)
	}
	p := authtest.NewProvider(b, keys...)
	jwks, err := NewJWKS(b.Context(), JWKSConfig{URL: p.JWKSURL(), RefreshInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer jwks.Close()
	var revoked RevocationList
	revoked.Replace([]Revocation{{TokenID: "other"}, {Subject: "bob", IssuedUpTo: now}})
	v, err := NewVerifier(VerifierConfig{Secret: secret, JWKS: jwks, Audiences: []string{testAudience}, RequireExpiration: true,
		AdminScope: "mcpgate:admin", Revoked: revoked.Revoked})
	if err != nil {
		b.Fatal(err)
	}
	fetches := p.Fetches()
	for _, alg := range append([]string{AlgHS256}, PublicKeyAlgorithms...) {
		tok := tokens[alg]
		b.Run(alg+"/cached", func(b *testing.B) {
			if _, err := v.Verify(b.Context(), tok, now); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(b.Context(), tok, now); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/cached-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := v.Verify(b.Context(), tok, now); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		b.Run(alg+"/uncached", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.verify(b.Context(), tok, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	if n := p.Fetches(); n != fetches {
		b.Errorf("verifying fetched the key set %d times", n-fetches)
	}
}
