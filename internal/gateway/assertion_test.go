package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/assertion"
	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/store"
)

// clock is a test's time, moved by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestSigningKeysRotateWithoutDowntime: on the real store, the keys two
// instances share are made once, sealed, published before they sign, and
// dropped only after every assertion they signed has expired; what each
// signs verifies with the public verifier against the JWKS it serves.
func TestSigningKeysRotateWithoutDowntime(t *testing.T) {
	for _, db := range databases() {
		t.Run(db.name, func(t *testing.T) {
			ctx := t.Context()
			st, sealer := sealedStore(t, db.url(t))
			clk := &clock{now: time.Now().UTC()}
			const ttl, lead, grace = time.Minute, 30 * time.Second, 10 * time.Second
			cfg := auth.AssertionKeysConfig{Store: signingKeyStore{st}, Sealer: sealer, TTL: ttl, Rotation: time.Hour, Lead: lead, Now: clk.Now}
			a, err := auth.NewAssertionKeys(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			b, err := auth.NewAssertionKeys(ctx, cfg) // a second instance on the same database
			if err != nil {
				t.Fatal(err)
			}
			stored := storedKeys(t, st)
			if len(stored) != 1 {
				t.Fatalf("two instances starting made %d keys, want 1", len(stored))
			}
			k1 := stored[0]
			if plain, err := sealer.Open(k1.Sealed); err != nil || len(plain) != 32 || len(k1.Public) != 32 {
				t.Fatalf("the stored private key is not the sealed 32-byte seed: %d bytes opened (%v), %d stored", len(plain), err, len(k1.Sealed))
			}
			verify := verifierOf(t, b, clk)
			checkSigner(t, a, verify, k1.ID)
			checkSigner(t, b, verify, k1.ID)

			// The period passes: a new key, published at once, signing
			// after the lead; the other instance makes none of its own.
			clk.Add(time.Hour)
			for _, k := range []*auth.AssertionKeys{a, b} {
				if err := k.Maintain(ctx); err != nil {
					t.Fatal(err)
				}
			}
			stored = storedKeys(t, st)
			if len(stored) != 2 {
				t.Fatalf("after the rotation period %d keys are stored, want 2", len(stored))
			}
			k2 := stored[1]
			for name, k := range map[string]*auth.AssertionKeys{"a": a, "b": b} {
				if kids := jwksKids(t, k); !slices.Equal(kids, []string{k1.ID, k2.ID}) {
					t.Errorf("instance %s publishes %v, want %v", name, kids, []string{k1.ID, k2.ID})
				}
			}
			checkSigner(t, b, verify, k1.ID) // within the lead: the old key still signs
			clk.Add(lead)
			checkSigner(t, a, verify, k2.ID)
			checkSigner(t, b, verify, k2.ID)

			// k1's last assertion expires TTL after k2 began to sign: k1
			// stays published until then (and the grace), not after.
			clk.Add(ttl + grace - time.Second)
			if err := a.Maintain(ctx); err != nil {
				t.Fatal(err)
			}
			if kids := jwksKids(t, a); !slices.Contains(kids, k1.ID) {
				t.Errorf("k1 left the JWKS before its assertions expired: %v", kids)
			}
			clk.Add(2 * time.Second)
			if err := a.Maintain(ctx); err != nil {
				t.Fatal(err)
			}
			if err := b.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			for name, k := range map[string]*auth.AssertionKeys{"a": a, "b": b} {
				if kids := jwksKids(t, k); !slices.Equal(kids, []string{k2.ID}) {
					t.Errorf("instance %s publishes %v once k1's assertions expired, want only %s", name, kids, k2.ID)
				}
			}

			// An instance whose AUTH_ENCRYPTION_SECRET opens no stored key
			// publishes them but signs with a new key of its own.
			other, _ := auth.NewSealer("another-secret-entirely")
			c, err := auth.NewAssertionKeys(ctx, auth.AssertionKeysConfig{Store: signingKeyStore{st}, Sealer: other, TTL: ttl, Lead: lead, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			kids := jwksKids(t, c)
			if len(kids) != 2 || kids[0] != k2.ID {
				t.Fatalf("an instance with another secret publishes %v, want %s and a new key", kids, k2.ID)
			}
			checkSigner(t, c, verifierOf(t, c, clk), kids[1])
		})
	}
}

func storedKeys(t *testing.T, st *store.Store) []store.SigningKey {
	t.Helper()
	keys, err := st.SigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func jwksKids(t *testing.T, k *auth.AssertionKeys) []string {
	t.Helper()
	w := httptest.NewRecorder()
	jwksHandler(k, time.Minute).ServeHTTP(w, httptest.NewRequest("GET", "/.well-known/jwks.json", nil))
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("GET /.well-known/jwks.json: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, key := range set.Keys {
		kids = append(kids, key.Kid)
	}
	return kids
}

// verifierOf is the public verifier, on k's JWKS served on a loopback
// port, at the test's time.
func verifierOf(t *testing.T, k *auth.AssertionKeys, clk *clock) *assertion.Verifier {
	t.Helper()
	srv := httptest.NewServer(jwksHandler(k, time.Minute))
	t.Cleanup(srv.Close)
	v, err := assertion.NewVerifier(assertion.Config{JWKSURL: srv.URL, Audience: "http://127.0.0.1:1/mcp", RefreshInterval: time.Nanosecond, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkSigner checks that k signs with kid now, and that the signature
// verifies.
func checkSigner(t *testing.T, k *auth.AssertionKeys, v *assertion.Verifier, kid string) {
	t.Helper()
	token, err := k.Sign(auth.Assertion{Client: auth.Identity{Issuer: "mcpgate", Subject: "alice"}, Audience: "http://127.0.0.1:1/mcp"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Parse(context.Background(), token)
	if err != nil {
		t.Fatalf("the assertion signed does not verify: %v", err)
	}
	if c.Subject != "alice" {
		t.Errorf("sub %q, want alice", c.Subject)
	}
	if got := kidOf(token); got != kid {
		t.Errorf("signed with %s, want %s", got, kid)
	}
}

// kidOf is the kid of a JWS's header.
func kidOf(token string) string {
	head, _, _ := strings.Cut(token, ".")
	b, _ := base64.RawURLEncoding.DecodeString(head)
	var h struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(b, &h)
	return h.Kid
}

// sealedStore is a store on databaseURL, closed when the test ends, and a
// sealer for its keys.
func sealedStore(tb testing.TB, databaseURL string) (*store.Store, *auth.Sealer) {
	tb.Helper()
	st, err := store.Open(context.Background(), databaseURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	sealer, err := auth.NewSealer("signing-keys-test-secret")
	if err != nil {
		tb.Fatal(err)
	}
	return st, sealer
}
