package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/assertion"
)

// memSigningKeys is a SigningKeyStore in memory, for the key ring alone.
type memSigningKeys struct {
	mu   sync.Mutex
	keys []SigningKeyRecord
}

func (m *memSigningKeys) SigningKeys(context.Context) ([]SigningKeyRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]SigningKeyRecord(nil), m.keys...), nil
}

func (m *memSigningKeys) AddSigningKey(_ context.Context, k SigningKeyRecord, unless time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, have := range m.keys {
		if have.CreatedAt.After(unless) {
			return false, nil
		}
	}
	m.keys = append(m.keys, k)
	return true, nil
}

func (m *memSigningKeys) DeleteSigningKeys(context.Context, []string) error { return nil }

// Signatures made with a precomputed nonce are Ed25519 signatures: the
// standard library's verifier (RFC 8032 §5.1.7) accepts each, on messages
// of every length, whether the nonce was made ahead or at once, and
// refuses each once a bit of the message or the signature changes.
func TestPrecomputedNonceSignaturesVerify(t *testing.T) {
	public, private, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := newEdKey(private)
	ahead := newEdNonces()
	ctx, cancel := context.WithCancel(context.Background())
	var fill sync.WaitGroup
	fill.Go(func() { ahead.fill(ctx) })
	defer func() { cancel(); fill.Wait() }()
	for i := range 600 {
		msg := make([]byte, i*7%2100)
		_, _ = rand.Read(msg)
		var n edNonce
		if i%2 == 0 {
			n = ahead.take()
		} else {
			n = newEdNonce()
		}
		sig := key.sign(nil, &n, msg)
		if len(sig) != ed25519.SignatureSize {
			t.Fatalf("signature of %d bytes, want %d", len(sig), ed25519.SignatureSize)
		}
		if !ed25519.Verify(public, msg, sig) {
			t.Fatalf("message %d (%d bytes): crypto/ed25519 refuses the signature", i, len(msg))
		}
		bad := bytes.Clone(sig)
		bad[i%len(bad)] ^= 1 << (i % 8)
		if ed25519.Verify(public, msg, bad) {
			t.Fatalf("message %d: a signature with a flipped bit verifies", i)
		}
		if len(msg) > 0 {
			msg[i%len(msg)] ^= 1
			if ed25519.Verify(public, msg, sig) {
				t.Fatalf("message %d: the signature verifies a changed message", i)
			}
		}
	}
}

// No nonce is ever used twice: many signers at once, with the ring's own
// precomputing goroutine running and the pool running dry, never repeat
// an R (a repeated nonce would give away the private key), and every
// assertion verifies under the key the JWKS publishes. Run returns once
// its context ends, the precomputing goroutine with it.
func TestNoSignatureNonceIsUsedTwice(t *testing.T) {
	sealer, err := NewSealer(strings.Repeat("s", 32))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := NewAssertionKeys(context.Background(), AssertionKeysConfig{Store: &memSigningKeys{}, Sealer: sealer, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var set assertion.JWKS
	if err := json.Unmarshal(keys.JWKS(), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS %s: %v", keys.JWKS(), err)
	}
	public, err := base64.RawURLEncoding.DecodeString(set.Keys[0].X)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); keys.Run(ctx, time.Hour) }()

	const signers, each = 8, 1500
	tokens := make([][]string, signers)
	var wg sync.WaitGroup
	for g := range signers {
		wg.Go(func() {
			for range each {
				tok, err := keys.Sign(Assertion{Client: Identity{Issuer: "https://idp.example", Subject: "alice"}, Audience: "https://up.example",
					UpstreamID: "u1", Method: "tools/call", Name: "echo", RequestID: json.RawMessage(`1`)})
				if err != nil {
					t.Error(err)
					return
				}
				tokens[g] = append(tokens[g], tok)
			}
		})
	}
	wg.Wait()
	cancel()
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of its context ending")
	}

	seen := map[string]bool{}
	for _, list := range tokens {
		for _, tok := range list {
			dot := strings.LastIndexByte(tok, '.')
			sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
			if err != nil {
				t.Fatal(err)
			}
			if !ed25519.Verify(public, []byte(tok[:dot]), sig) {
				t.Fatalf("an assertion does not verify under the published key: %s", tok)
			}
			r := string(sig[:32])
			if seen[r] {
				t.Fatalf("a nonce was used twice (R %x)", sig[:32])
			}
			seen[r] = true
		}
	}
	if len(seen) != signers*each {
		t.Fatalf("%d distinct nonces for %d signatures", len(seen), signers*each)
	}
}

// BenchmarkSign is one assertion signed, with its nonce made at once and
// made ahead: the difference is the work Run's goroutine takes off the
// call path. (Made ahead, a nonce is ready when calls come no faster than
// that goroutine makes them, some 20 µs each; a loop of nothing but
// signing outruns it, so the nonces are made before the clock starts.)
func BenchmarkSign(b *testing.B) {
	sealer, err := NewSealer(strings.Repeat("s", 32))
	if err != nil {
		b.Fatal(err)
	}
	keys, err := NewAssertionKeys(context.Background(), AssertionKeysConfig{Store: &memSigningKeys{}, Sealer: sealer, TTL: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	a := Assertion{Client: Identity{Issuer: "https://idp.example", Subject: "alice"}, Audience: "https://up.example",
		UpstreamID: "u1", Method: "tools/call", Name: "echo", RequestID: json.RawMessage(`1`),
		Headers: []assertion.Header{{Name: "X-Tenant-Id", Value: "acme"}}}
	sign := func(b *testing.B) {
		if _, err := keys.Sign(a); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("nonce=inline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sign(b)
		}
	})
	b.Run("nonce=ahead", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			keys.nonces.ready <- newEdNonce()
			b.StartTimer()
			sign(b)
		}
	})
}
