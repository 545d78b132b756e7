package auth

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func newTestSealer(t *testing.T, secret string) *Sealer {
	t.Helper()
	s, err := NewSealer(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewSealerRefusesEmptySecretNamingTheSetting(t *testing.T) {
	_, err := NewSealer("")
	if err == nil || !strings.Contains(err.Error(), "AUTH_ENCRYPTION_SECRET") {
		t.Fatalf("NewSealer(\"\") error = %v, want one naming AUTH_ENCRYPTION_SECRET", err)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := newTestSealer(t, "correct horse battery staple")
	for _, pt := range [][]byte{nil, []byte(`{"token":"t0p-s3cret"}`), bytes.Repeat([]byte{0xff}, 10000)} {
		blob, err := s.Seal(pt)
		if err != nil {
			t.Fatal(err)
		}
		if blob[0] != 1 || len(blob) != 1+12+len(pt)+16 {
			t.Fatalf("blob: version %d, %d bytes for %d bytes of plaintext", blob[0], len(blob), len(pt))
		}
		if len(pt) > 4 && bytes.Contains(blob, pt) {
			t.Fatal("the blob contains the plaintext")
		}
		got, err := s.Open(blob)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("Open = %q, want %q", got, pt)
		}
	}
	// A second Sealer with the same secret (another instance, a restart)
	// opens it too.
	blob, _ := s.Seal([]byte("x"))
	if _, err := newTestSealer(t, "correct horse battery staple").Open(blob); err != nil {
		t.Fatal(err)
	}
}

func TestTwoSealsOfTheSamePlaintextDiffer(t *testing.T) {
	s := newTestSealer(t, "k")
	a, _ := s.Seal([]byte("same"))
	b, _ := s.Seal([]byte("same"))
	if bytes.Equal(a, b) {
		t.Fatal("two seals are equal: the nonce is not random")
	}
}

func TestOpenFailsForWrongSecretOrAlteredBlob(t *testing.T) {
	s := newTestSealer(t, "the right secret")
	blob, _ := s.Seal([]byte(`{"password":"hunter22"}`))
	flip := func(i int) []byte {
		b := bytes.Clone(blob)
		b[i] ^= 0x01
		return b
	}
	for _, tc := range []struct {
		name   string
		sealer *Sealer
		blob   []byte
		says   string
	}{
		{"wrong secret", newTestSealer(t, "the wrong secret"), blob, "cannot be decrypted with this AUTH_ENCRYPTION_SECRET"},
		{"nonce altered", s, flip(3), "cannot be decrypted with this AUTH_ENCRYPTION_SECRET"},
		{"ciphertext altered", s, flip(20), "cannot be decrypted with this AUTH_ENCRYPTION_SECRET"},
		{"tag altered", s, flip(len(blob) - 1), "cannot be decrypted with this AUTH_ENCRYPTION_SECRET"},
		{"truncated", s, blob[:len(blob)-1], "cannot be decrypted with this AUTH_ENCRYPTION_SECRET"},
		{"too short", s, blob[:10], "too short"},
		{"empty", s, nil, "empty"},
		{"unknown version", s, append([]byte{2}, blob[1:]...), "version 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := tc.sealer.Open(tc.blob)
			if err == nil {
				t.Fatalf("Open succeeded: %q", pt)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
			if strings.Contains(err.Error(), "secret\"") || strings.Contains(err.Error(), "hunter22") {
				t.Errorf("error %q shows a secret", err)
			}
		})
	}
}

// TestOldSecretOpensAndResealMovesToCurrent: after AUTH_ENCRYPTION_SECRET
// changes, a Sealer given the old one (OLD_AUTH_ENCRYPTION_SECRET) opens
// what was sealed under it, and Reseal turns the blob into one the new
// secret alone opens; a blob already under the current secret is left as
// it is.
func TestOldSecretOpensAndResealMovesToCurrent(t *testing.T) {
	before := newTestSealer(t, "secret one")
	blob, _ := before.Seal([]byte(`{"token":"t0k"}`))

	rotated, err := NewSealer("secret two", "secret one")
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := rotated.Open(blob); err != nil || string(pt) != `{"token":"t0k"}` {
		t.Fatalf("Open with the old secret given = %q, %v; want the plaintext", pt, err)
	}
	resealed, changed, err := rotated.Reseal(blob)
	if err != nil || !changed {
		t.Fatalf("Reseal = changed %v, %v; want a new blob", changed, err)
	}
	after := newTestSealer(t, "secret two")
	if pt, err := after.Open(resealed); err != nil || string(pt) != `{"token":"t0k"}` {
		t.Fatalf("the new secret alone opens the resealed blob: %q, %v", pt, err)
	}
	if _, err := after.Open(blob); !errors.Is(err, ErrCannotOpen) {
		t.Fatalf("the new secret alone opens the old blob: %v, want ErrCannotOpen", err)
	}
	again, changed, err := rotated.Reseal(resealed)
	if err != nil || changed || !bytes.Equal(again, resealed) {
		t.Fatalf("Reseal of a current blob = changed %v, %v; want it unchanged", changed, err)
	}
	if _, _, err := newTestSealer(t, "secret three").Reseal(blob); !errors.Is(err, ErrCannotOpen) {
		t.Fatalf("Reseal without the old secret: %v, want ErrCannotOpen", err)
	}
}

func TestNewSealerRefusesAnEmptyOldSecretNamingTheSetting(t *testing.T) {
	if _, err := NewSealer("current", ""); err == nil || !strings.Contains(err.Error(), EnvOldEncryptionSecret) {
		t.Fatalf("NewSealer with an empty old secret: %v, want an error naming %s", err, EnvOldEncryptionSecret)
	}
	// The wrong-secret message names both settings once an old one is given.
	blob, _ := newTestSealer(t, "elsewhere").Seal([]byte("x"))
	s, err := NewSealer("current", "current", "older")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(blob); err == nil || !strings.Contains(err.Error(), EnvOldEncryptionSecret) {
		t.Fatalf("Open error %v does not name %s", err, EnvOldEncryptionSecret)
	}
}
