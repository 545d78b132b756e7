package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
)

// The public-key algorithms a client token may be signed with (RFC 7518
// §3.1, RFC 8037 §3.1). HS256 is the shared-secret one.
const (
	AlgHS256 = "HS256"
	AlgRS256 = "RS256"
	AlgES256 = "ES256"
	AlgEdDSA = "EdDSA"
)

// PublicKeyAlgorithms are the algorithms of tokens signed by an identity
// provider's key, in the order mcpgate lists them.
var PublicKeyAlgorithms = []string{AlgRS256, AlgES256, AlgEdDSA}

// minRSABits is the smallest RSA key accepted (NIST SP 800-131A).
const minRSABits = 2048

// publicKey is one verification key with what the token must say to use it.
type publicKey struct {
	kid string // "" when the source names none
	alg string // the one algorithm it verifies
	key crypto.PublicKey
}

// algorithmFor returns the token algorithm a public key verifies, or "" for
// a key mcpgate does not use (another curve, a short RSA key).
func algorithmFor(k crypto.PublicKey) string {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() >= minRSABits {
			return AlgRS256
		}
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return AlgES256
		}
	case ed25519.PublicKey:
		return AlgEdDSA
	}
	return ""
}

// loadPublicKeyFile reads a PEM public key (PUBLIC KEY, RSA PUBLIC KEY, or
// the key of a CERTIFICATE) for JWT_PUBLIC_KEY_PATH. The key must be RSA of
// 2048 bits or more, EC P-256 or Ed25519.
func loadPublicKeyFile(path string) (publicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return publicKey{}, fmt.Errorf("read the public key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return publicKey{}, fmt.Errorf("%s holds no PEM block: write the key as -----BEGIN PUBLIC KEY-----", path)
	}
	var k crypto.PublicKey
	switch block.Type {
	case "PUBLIC KEY":
		k, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		k, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(block.Bytes); err == nil {
			k = c.PublicKey
		}
	default:
		return publicKey{}, fmt.Errorf("%s holds a PEM block of type %q: want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE (never a private key)", path, block.Type)
	}
	if err != nil {
		return publicKey{}, fmt.Errorf("parse the public key in %s: %w", path, err)
	}
	alg := algorithmFor(k)
	if alg == "" {
		return publicKey{}, fmt.Errorf("the key in %s is neither RSA of %d bits or more, EC P-256 nor Ed25519", path, minRSABits)
	}
	return publicKey{alg: alg, key: k}, nil
}

// jwkDoc is a JSON Web Key Set (RFC 7517 §5).
type jwkDoc struct {
	Keys []json.RawMessage `json:"keys"`
}

// jwk is the members of a JSON Web Key mcpgate reads (RFC 7517 §4, RFC 7518
// §6, RFC 8037 §2).
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS returns the signature keys of a JWKS document. Keys of other
// types, curves or uses are skipped (an identity provider may publish
// encryption keys beside its signing keys); a document with no usable key is
// an error.
func parseJWKS(b []byte) ([]publicKey, error) {
	var doc jwkDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	var keys []publicKey
	for _, raw := range doc.Keys {
		var j jwk
		if json.Unmarshal(raw, &j) != nil || (j.Use != "" && j.Use != "sig") {
			continue
		}
		k, err := j.publicKey()
		if err != nil {
			continue
		}
		alg := algorithmFor(k)
		if alg == "" || (j.Alg != "" && j.Alg != alg) {
			continue
		}
		keys = append(keys, publicKey{kid: j.Kid, alg: alg, key: k})
	}
	if len(keys) == 0 {
		return nil, errors.New("the key set has no RS256, ES256 or EdDSA signature key")
	}
	return keys, nil
}

func (j jwk) publicKey() (crypto.PublicKey, error) {
	b64 := base64.RawURLEncoding
	switch j.Kty {
	case "RSA":
		n, err1 := b64.DecodeString(j.N)
		e, err2 := b64.DecodeString(j.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA key")
		}
		exp := new(big.Int).SetBytes(e)
		if exp.Int64() < 3 || exp.Int64()%2 == 0 {
			return nil, errors.New("bad RSA exponent")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp.Int64())}, nil
	case "EC":
		if j.Crv != "P-256" {
			return nil, errors.New("unsupported curve")
		}
		x, err1 := b64.DecodeString(j.X)
		y, err2 := b64.DecodeString(j.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return nil, errors.New("bad EC key")
		}
		// ParseUncompressedPublicKey checks that the point is on the curve.
		return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	case "OKP":
		x, err := b64.DecodeString(j.X)
		if j.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad OKP key")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, errors.New("unsupported key type")
}
