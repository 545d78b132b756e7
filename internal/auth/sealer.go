package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
)

// EnvEncryptionSecret is the setting whose value Sealer derives its key from.
const EnvEncryptionSecret = "AUTH_ENCRYPTION_SECRET"

// EnvOldEncryptionSecret is the setting that names the secret credentials
// were sealed under before AUTH_ENCRYPTION_SECRET changed. It is
// ContextForge's name for it (its rotation script, migrate_enc_secret,
// reads OLD_AUTH_ENCRYPTION_SECRET); mcpgate opens with it and re-seals
// under the current secret at start instead of needing that script.
const EnvOldEncryptionSecret = "OLD_AUTH_ENCRYPTION_SECRET"

// ErrCannotOpen is wrapped by Open's error when a blob opens under none of
// the Sealer's secrets: it was sealed under another AUTH_ENCRYPTION_SECRET,
// or it was altered.
var ErrCannotOpen = errors.New("cannot be decrypted")

const (
	// sealVersion is the first byte of every sealed blob, so the format
	// can change without guessing what old blobs are.
	sealVersion byte = 1
	// sealKeyInfo is the HKDF context label: the same secret used for
	// anything else yields an unrelated key.
	sealKeyInfo = "mcpgate upstream credentials key v1"
	// sealAD is the associated data of every seal: a blob sealed by
	// another program with the same key does not open here.
	sealAD = "mcpgate upstream credentials v1"
)

// Sealer encrypts upstream credentials for storage with AES-256-GCM, under a
// key derived from AUTH_ENCRYPTION_SECRET with HKDF-SHA256. A sealed blob is
//
//	version byte (1) || 12-byte random nonce || ciphertext and GCM tag
//
// A Sealer may also hold old secrets (OLD_AUTH_ENCRYPTION_SECRET): it opens
// blobs sealed under them, seals only under the current one, and Reseal
// moves a blob from an old secret to the current one, so that a secret can
// be rotated without losing stored credentials.
//
// It is safe for concurrent use.
type Sealer struct {
	aead cipher.AEAD   // from the current secret: seals and opens
	old  []cipher.AEAD // from old secrets: open only
}

// NewSealer returns a Sealer whose key is derived from secret, the value of
// AUTH_ENCRYPTION_SECRET, and that also opens blobs sealed under each of
// old (OLD_AUTH_ENCRYPTION_SECRET). No secret may be empty; an old secret
// equal to the current one is ignored.
func NewSealer(secret string, old ...string) (*Sealer, error) {
	if secret == "" {
		return nil, fmt.Errorf("%s is not set: it is needed to encrypt stored upstream credentials "+
			"(make one with `mcpgate token --new-secret` or `openssl rand -hex 32`)", EnvEncryptionSecret)
	}
	aead, err := newAEAD(secret, EnvEncryptionSecret)
	if err != nil {
		return nil, err
	}
	s := &Sealer{aead: aead}
	for _, o := range old {
		switch {
		case o == "":
			return nil, fmt.Errorf("%s is empty: give the secret credentials were sealed under, or leave it unset", EnvOldEncryptionSecret)
		case o == secret:
			continue
		}
		a, err := newAEAD(o, EnvOldEncryptionSecret)
		if err != nil {
			return nil, err
		}
		s.old = append(s.old, a)
	}
	return s, nil
}

// newAEAD derives the credentials key from secret, the value of setting.
func newAEAD(secret, setting string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, sealKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive the credentials key from %s: %w", setting, err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("credentials cipher: %w", err)
	}
	// This AEAD draws a random 12-byte nonce and prefixes it to the
	// ciphertext itself; its Overhead counts the nonce and the tag.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("credentials cipher: %w", err)
	}
	return aead, nil
}

// Seal encrypts plaintext. Two seals of the same plaintext differ. The error
// is always nil (crypto/rand cannot fail since Go 1.24); it is kept so a
// future key source can report one.
func (s *Sealer) Seal(plaintext []byte) ([]byte, error) {
	out := make([]byte, 1, 1+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion
	return s.aead.Seal(out, nil, plaintext, []byte(sealAD)), nil
}

// Open decrypts a blob made by Seal, under the current secret or an old
// one. A blob sealed under none of them, or altered in any way, is an error
// wrapping ErrCannotOpen.
func (s *Sealer) Open(blob []byte) ([]byte, error) {
	pt, _, err := s.open(blob)
	return pt, err
}

// HasOld reports whether the Sealer was given an old secret to open with.
func (s *Sealer) HasOld() bool { return len(s.old) > 0 }

// Reseal returns blob sealed under the current secret: blob itself when it
// already is (resealed false), else a new seal of its plaintext, opened
// with an old secret (resealed true). Errors are Open's.
func (s *Sealer) Reseal(blob []byte) (sealed []byte, resealed bool, err error) {
	pt, current, err := s.open(blob)
	if err != nil || current {
		return blob, false, err
	}
	sealed, err = s.Seal(pt)
	return sealed, err == nil, err
}

// open decrypts blob and reports whether the current secret opened it.
func (s *Sealer) open(blob []byte) (plaintext []byte, current bool, err error) {
	switch {
	case len(blob) == 0:
		return nil, false, errors.New("open stored credentials: the blob is empty")
	case blob[0] != sealVersion:
		return nil, false, fmt.Errorf("open stored credentials: unknown format version %d (a newer mcpgate wrote it, or it is not sealed credentials)", blob[0])
	case len(blob) < 1+s.aead.Overhead():
		return nil, false, fmt.Errorf("open stored credentials: the blob is %d bytes, too short to be sealed credentials", len(blob))
	}
	if pt, err := s.aead.Open(nil, nil, blob[1:], []byte(sealAD)); err == nil {
		return pt, true, nil
	}
	for _, a := range s.old {
		if pt, err := a.Open(nil, nil, blob[1:], []byte(sealAD)); err == nil {
			return pt, false, nil
		}
	}
	which := "this " + EnvEncryptionSecret
	if len(s.old) > 0 {
		which += " or " + EnvOldEncryptionSecret
	}
	return nil, false, fmt.Errorf("open stored credentials: they %w with %s "+
		"(they were sealed under another secret, or the stored data is corrupt)", ErrCannotOpen, which)
}
