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
// It is safe for concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer whose key is derived from secret, the value of
// AUTH_ENCRYPTION_SECRET. The secret must not be empty.
func NewSealer(secret string) (*Sealer, error) {
	if secret == "" {
		return nil, fmt.Errorf("%s is not set: it is needed to encrypt stored upstream credentials "+
			"(make one with `mcpgate token --new-secret` or `openssl rand -hex 32`)", EnvEncryptionSecret)
	}
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, sealKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive the credentials key from %s: %w", EnvEncryptionSecret, err)
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
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext. Two seals of the same plaintext differ. The error
// is always nil (crypto/rand cannot fail since Go 1.24); it is kept so a
// future key source can report one.
func (s *Sealer) Seal(plaintext []byte) ([]byte, error) {
	out := make([]byte, 1, 1+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion
	return s.aead.Seal(out, nil, plaintext, []byte(sealAD)), nil
}

// Open decrypts a blob made by Seal. A blob sealed under another secret, or
// altered in any way, is an error saying so.
func (s *Sealer) Open(blob []byte) ([]byte, error) {
	switch {
	case len(blob) == 0:
		return nil, errors.New("open stored credentials: the blob is empty")
	case blob[0] != sealVersion:
		return nil, fmt.Errorf("open stored credentials: unknown format version %d (a newer mcpgate wrote it, or it is not sealed credentials)", blob[0])
	case len(blob) < 1+s.aead.Overhead():
		return nil, fmt.Errorf("open stored credentials: the blob is %d bytes, too short to be sealed credentials", len(blob))
	}
	pt, err := s.aead.Open(nil, nil, blob[1:], []byte(sealAD))
	if err != nil {
		return nil, fmt.Errorf("open stored credentials: they cannot be decrypted with this %s "+
			"(it differs from the one they were sealed with, or the stored data is corrupt)", EnvEncryptionSecret)
	}
	return pt, nil
}
