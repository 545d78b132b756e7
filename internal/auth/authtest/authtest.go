// Package authtest is a test identity provider: signing keys of each
// algorithm mcpgate accepts and a JWKS endpoint (with OpenID discovery) on a
// real loopback socket, whose keys can be rotated and which can go down or
// serve garbage. Tests use NewKey, Sign and NewProvider; the load bench,
// not a test, GenerateKey, SignClaims and Serve.
package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// Key is a private signing key of the provider, with its kid.
type Key struct {
	Kid    string
	Alg    string // RS256, ES256 or EdDSA
	method jwt.SigningMethod
	priv   crypto.Signer
}

// NewKey generates a key for alg (RS256, ES256 or EdDSA), failing t if it
// cannot.
func NewKey(t testing.TB, alg, kid string) Key {
	t.Helper()
	k, err := GenerateKey(alg, kid)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// GenerateKey generates a key for alg (RS256, ES256 or EdDSA), for programs
// that are not tests (the load bench).
func GenerateKey(alg, kid string) (Key, error) {
	var (
		priv crypto.Signer
		err  error
		m    jwt.SigningMethod
	)
	switch alg {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
		m = jwt.SigningMethodRS256
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		m = jwt.SigningMethodES256
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
		m = jwt.SigningMethodEdDSA
	default:
		return Key{}, fmt.Errorf("authtest: no algorithm %q", alg)
	}
	if err != nil {
		return Key{}, err
	}
	return Key{Kid: kid, Alg: alg, method: m, priv: priv}, nil
}

// JWK is the key's public JWK (RFC 7517), as a provider publishes it.
func (k Key) JWK() map[string]any {
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	m := map[string]any{"kid": k.Kid, "use": "sig", "alg": k.Alg}
	switch p := k.priv.Public().(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64(p.N.Bytes()), b64(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		raw, _ := p.Bytes()
		m["kty"], m["crv"], m["x"], m["y"] = "EC", "P-256", b64(raw[1:33]), b64(raw[33:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64(p)
	}
	return m
}

// PublicPEM is the public key as a PEM PUBLIC KEY block, and its DER bytes.
func (k Key) PublicPEM(t testing.TB) (pemBytes, der []byte) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), der
}

// Sign returns a token with claims, signed by k with its kid (if any) in
// the header, failing t if it cannot.
func (k Key) Sign(t testing.TB, claims jwt.Claims) string {
	t.Helper()
	s, err := k.SignClaims(claims)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// SignClaims is Sign for programs that are not tests.
func (k Key) SignClaims(claims jwt.Claims) (string, error) {
	tok := jwt.NewWithClaims(k.method, claims)
	if k.Kid != "" {
		tok.Header["kid"] = k.Kid
	}
	return tok.SignedString(k.priv)
}

// Provider is the JWKS endpoint (/jwks) and OpenID configuration
// (/.well-known/openid-configuration, naming URL as issuer) of a test
// identity provider on 127.0.0.1. It counts the key-set requests it gets.
type Provider struct {
	// URL is the provider's base URL, its issuer.
	URL     string
	srv     *httptest.Server
	mu      sync.Mutex
	keys    []Key
	answer  string
	fetches atomic.Int64
}

// Answers of Provider.Set besides the keys.
const (
	Down    = "down"    // 503
	Garbage = "garbage" // 200 with HTML
)

// NewProvider serves keys until the test ends.
func NewProvider(t testing.TB, keys ...Key) *Provider {
	p := Serve(keys...)
	t.Cleanup(p.Close)
	return p
}

// Serve serves keys until Close, for programs that are not tests.
func Serve(keys ...Key) *Provider {
	p := &Provider{keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		p.mu.Lock()
		defer p.mu.Unlock()
		switch p.answer {
		case Down:
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		case Garbage:
			_, _ = w.Write([]byte("<html>not a key set</html>"))
			return
		}
		set := []map[string]any{}
		for _, k := range p.keys {
			set = append(set, k.JWK())
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": set})
	})
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": p.URL, "jwks_uri": p.URL + "/jwks"})
	})
	p.srv = httptest.NewServer(mux)
	p.URL = p.srv.URL
	return p
}

// Close stops serving.
func (p *Provider) Close() { p.srv.Close() }

// JWKSURL is the key set's URL.
func (p *Provider) JWKSURL() string { return p.URL + "/jwks" }

// Fetches is how many times the key set was requested.
func (p *Provider) Fetches() int64 { return p.fetches.Load() }

// Set changes what the provider answers: "" the keys (replaced by keys
// when any are given), Down or Garbage.
func (p *Provider) Set(answer string, keys ...Key) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answer = answer
	if keys != nil {
		p.keys = keys
	}
}
