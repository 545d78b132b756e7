package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"

	"filippo.io/edwards25519"
)

// An identity assertion is signed on every forwarded request, so its
// signature is on the call path. An Ed25519 signature (RFC 8032 §5.1.6)
// is S = r + H(R ‖ A ‖ M)·s with R = r·B; the scalar multiplication r·B is
// nearly all of its cost (some 20 µs of 23 here), and with RFC 8032's
// deterministic r = H(prefix ‖ M) it can only start once the message is
// known. Verification (§5.1.7) checks S·B = R + H(R ‖ A ‖ M)·A and does
// not see how r was chosen: any r uniform modulo the group order gives a
// signature every Ed25519 verifier accepts, with the same security, as
// long as no r is ever used twice or known to anyone. So mcpgate draws r
// from crypto/rand and computes R ahead of time, off the call path, on a
// goroutine AssertionKeys.Run owns; signing on the call path is then two
// SHA-512 blocks and a multiply-add (about 2 µs). Each precomputed nonce
// is handed out once, through a channel; when none is ready, Sign makes
// one itself. crypto/rand cannot fail quietly (since Go 1.24 Read never
// returns an error: a failing source ends the process), the risk that
// made RFC 8032 derive r deterministically.

// nonceAhead is how many nonces are kept ready: enough for a burst of
// calls between two turns of the precomputing goroutine, small in memory
// (64 bytes each).
const nonceAhead = 256

// edNonce is one signature's secret nonce r and its commitment R = r·B.
type edNonce struct {
	r edwards25519.Scalar
	R [32]byte
}

func newEdNonce() edNonce {
	var seed [64]byte
	_, _ = rand.Read(seed[:]) // never fails (crypto/rand.Read)
	var n edNonce
	if _, err := n.r.SetUniformBytes(seed[:]); err != nil {
		panic("auth: SetUniformBytes on 64 bytes: " + err.Error()) // cannot happen: the length is right
	}
	copy(n.R[:], new(edwards25519.Point).ScalarBaseMult(&n.r).Bytes())
	return n
}

// edNonces hands out precomputed nonces, each once.
type edNonces struct{ ready chan edNonce }

func newEdNonces() *edNonces { return &edNonces{ready: make(chan edNonce, nonceAhead)} }

// take returns a precomputed nonce, or a fresh one when none is ready.
func (p *edNonces) take() edNonce {
	select {
	case n := <-p.ready:
		return n
	default:
		return newEdNonce()
	}
}

// fill keeps nonceAhead nonces ready until ctx ends.
func (p *edNonces) fill(ctx context.Context) {
	for {
		n := newEdNonce()
		select {
		case p.ready <- n:
		case <-ctx.Done():
			return
		}
	}
}

// edKey is an Ed25519 private key expanded once for signing: its secret
// scalar s (RFC 8032 §5.1.5) and its public key A.
type edKey struct {
	s      edwards25519.Scalar
	public []byte
}

func newEdKey(private ed25519.PrivateKey) edKey {
	h := sha512.Sum512(private.Seed())
	var k edKey
	if _, err := k.s.SetBytesWithClamping(h[:32]); err != nil {
		panic("auth: SetBytesWithClamping on 32 bytes: " + err.Error()) // cannot happen: the length is right
	}
	k.public = append([]byte(nil), private.Public().(ed25519.PublicKey)...)
	return k
}

// sign appends to dst the Ed25519 signature of msg under k with nonce n,
// which must never be used again.
func (k *edKey) sign(dst []byte, n *edNonce, msg []byte) []byte {
	d := sha512.New()
	d.Write(n.R[:])
	d.Write(k.public)
	d.Write(msg)
	var sum [64]byte
	var c edwards25519.Scalar
	if _, err := c.SetUniformBytes(d.Sum(sum[:0])); err != nil {
		panic("auth: SetUniformBytes on a SHA-512 sum: " + err.Error()) // cannot happen: the length is right
	}
	S := new(edwards25519.Scalar).MultiplyAdd(&c, &k.s, &n.r)
	dst = append(dst, n.R[:]...)
	return append(dst, S.Bytes()...)
}
