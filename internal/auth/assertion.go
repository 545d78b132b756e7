package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/mcpgate/mcpgate/assertion"
)

// The identity assertion (docs/identity-assertion.md) is a JWS mcpgate
// signs with a key of its own and adds to the requests it forwards to an
// upstream that asked for it (identity_assertion). The keys are Ed25519
// (EdDSA, RFC 8037): keys and signatures are small, every JOSE library
// verifies them, and signing is cheap enough for every call once its
// nonce is made ahead of time (edsign.go). They live in the database, the
// private half sealed with AUTH_ENCRYPTION_SECRET, shared by every
// instance.

// SigningKeyRecord is one assertion signing key as stored.
type SigningKeyRecord struct {
	ID        string
	Sealed    []byte // the Ed25519 private key (its 32-byte seed), sealed
	Public    []byte // the Ed25519 public key
	CreatedAt time.Time
	// SignsFrom is when the key begins to sign: it is published in the
	// JWKS from CreatedAt, before. The newest key whose SignsFrom has come
	// signs; the one before it stays published until every assertion it
	// signed has expired.
	SignsFrom time.Time
}

// SigningKeyStore keeps the signing keys (the store is one).
type SigningKeyStore interface {
	SigningKeys(ctx context.Context) ([]SigningKeyRecord, error)
	// AddSigningKey stores k unless a key created after unlessCreatedAfter
	// exists (another instance rotated first); added says which.
	AddSigningKey(ctx context.Context, k SigningKeyRecord, unlessCreatedAfter time.Time) (added bool, err error)
	DeleteSigningKeys(ctx context.Context, ids []string) error
}

// AssertionKeysConfig configures AssertionKeys.
type AssertionKeysConfig struct {
	Store  SigningKeyStore
	Sealer *Sealer
	// Issuer is the iss of every assertion (IDENTITY_ASSERTION_ISSUER).
	Issuer string
	// TTL is each assertion's lifetime (IDENTITY_ASSERTION_TTL).
	TTL time.Duration
	// Rotation is how often a new key is made (IDENTITY_ASSERTION_KEY_ROTATION);
	// 0: only when asked (Rotate).
	Rotation time.Duration
	// Lead is how long a new key is published before it signs
	// (IDENTITY_ASSERTION_KEY_LEAD): every instance must have read it by
	// then, through the bus or Maintain's periodic reload.
	Lead time.Duration
	// Grace is how long past the last expiry of its assertions a retired
	// key stays published (clock skew, verifiers' leeway); 0 means 10 s, twice
	// the public verifier's default leeway.
	Grace time.Duration
	// Changed is called after this instance added or removed a key, so
	// that the others read them again (the bus); nil: nothing.
	Changed func(ctx context.Context)
	Logger  *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// AssertionKeys is mcpgate's key ring for identity assertions: it signs
// with the current key and publishes the JWKS. Keys are parsed once, when
// read from the store; signing takes no lock. It is safe for concurrent
// use.
type AssertionKeys struct {
	cfg    AssertionKeysConfig
	state  atomic.Pointer[keyRing]
	mu     sync.Mutex // one Maintain or Reload at a time
	nonces *edNonces  // kept filled by Run
}

// keyRing is the keys as last read, oldest first.
type keyRing struct {
	keys []ringKey
	jwks []byte
}

type ringKey struct {
	id        string
	jose      string             // the encoded protected header it signs under
	private   ed25519.PrivateKey // nil when it cannot be opened: published, never used
	signing   *edKey             // private, expanded for signing; nil with it
	public    ed25519.PublicKey
	createdAt time.Time
	signsFrom time.Time
}

// NewAssertionKeys reads the stored keys, making the first one if there is
// none.
func NewAssertionKeys(ctx context.Context, cfg AssertionKeysConfig) (*AssertionKeys, error) {
	if cfg.Sealer == nil {
		return nil, fmt.Errorf("%s is not set: identity assertion keys are stored sealed with it", EnvEncryptionSecret)
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Issuer == "" {
		cfg.Issuer = assertion.DefaultIssuer
	}
	k := &AssertionKeys{cfg: cfg, nonces: newEdNonces()}
	k.state.Store(&keyRing{jwks: []byte(`{"keys":[]}`)})
	if err := k.Maintain(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

// Reload reads the keys again (another instance changed them).
func (k *AssertionKeys) Reload(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reloadLocked(ctx)
}

func (k *AssertionKeys) reloadLocked(ctx context.Context) error {
	recs, err := k.cfg.Store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("read identity assertion signing keys: %w", err)
	}
	old := map[string]ringKey{}
	for _, rk := range k.state.Load().keys {
		old[rk.id] = rk
	}
	ring := &keyRing{}
	set := assertion.JWKS{Keys: []assertion.JWK{}}
	for _, rec := range recs {
		rk, parsed := old[rec.ID]
		if !parsed || rk.private == nil {
			rk = ringKey{id: rec.ID, jose: joseHeader(rec.ID), public: ed25519.PublicKey(rec.Public), createdAt: rec.CreatedAt, signsFrom: rec.SignsFrom}
			if seed, err := k.cfg.Sealer.Open(rec.Sealed); err == nil && len(seed) == ed25519.SeedSize {
				rk.private = ed25519.NewKeyFromSeed(seed)
				ek := newEdKey(rk.private)
				rk.signing = &ek
			} else if !parsed {
				// Not a warning: it was sealed under another secret, stays
				// published until its assertions expire, and a key this
				// instance can open signs instead (Maintain makes one).
				k.cfg.Logger.Info("an identity assertion signing key was sealed under another AUTH_ENCRYPTION_SECRET; it stays published until its assertions expire and signs nothing here",
					"kid", rec.ID)
			}
		}
		if len(rk.public) != ed25519.PublicKeySize {
			continue
		}
		ring.keys = append(ring.keys, rk)
		set.Keys = append(set.Keys, assertion.PublicJWK(rk.id, rk.public))
	}
	ring.jwks, _ = json.Marshal(set)
	k.state.Store(ring)
	return nil
}

// Maintain reads the keys, makes the first one (signing at once) when no
// usable one exists, a new one (signing after Lead) when the newest is
// older than Rotation, and drops the keys whose every assertion has
// expired. Run calls it periodically; any instance may, at any time.
func (k *AssertionKeys) Maintain(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reloadLocked(ctx); err != nil {
		return err
	}
	now := k.cfg.Now()
	changed := false
	ring := k.state.Load()
	switch newest := ring.newest(); {
	case ring.usable() == nil:
		// None this instance can open (none at all, or sealed under another
		// secret): one that signs at once, unless another instance has
		// just made one.
		added, err := k.addLocked(ctx, now, now, newest.createdAt)
		if err != nil {
			return err
		}
		changed = changed || added
	case k.cfg.Rotation > 0 && !newest.createdAt.Add(k.cfg.Rotation).After(now):
		added, err := k.addLocked(ctx, now, now.Add(k.cfg.Lead), now.Add(-k.cfg.Rotation))
		if err != nil {
			return err
		}
		changed = changed || added
	}
	if gone := k.expired(k.state.Load(), now); len(gone) > 0 {
		if err := k.cfg.Store.DeleteSigningKeys(ctx, gone); err != nil {
			return fmt.Errorf("delete expired identity assertion signing keys: %w", err)
		}
		changed = true
	}
	if !changed {
		return nil
	}
	if err := k.reloadLocked(ctx); err != nil {
		return err
	}
	if k.cfg.Changed != nil {
		k.cfg.Changed(ctx)
	}
	return nil
}

// Rotate makes a new key now, published at once and signing after Lead;
// the current one goes on signing until then. It returns the new key's id
// and when it begins to sign.
func (k *AssertionKeys) Rotate(ctx context.Context) (string, time.Time, error) {
	k.mu.Lock()
	now := k.cfg.Now()
	_, err := k.addLocked(ctx, now, now.Add(k.cfg.Lead), now.Add(time.Hour)) // nothing is created in the future: always added
	var id string
	if err == nil {
		err = k.reloadLocked(ctx)
		id = k.state.Load().newest().id
	}
	k.mu.Unlock()
	if err != nil {
		return "", time.Time{}, err
	}
	if k.cfg.Changed != nil {
		k.cfg.Changed(ctx)
	}
	from := now.Add(k.cfg.Lead)
	k.cfg.Logger.Info("identity assertion signing key rotated", "kid", id, "signs_from", from.UTC().Format(time.RFC3339))
	return id, from, nil
}

// addLocked makes and stores a key unless one was created after unless.
func (k *AssertionKeys) addLocked(ctx context.Context, created, signsFrom, unless time.Time) (bool, error) {
	public, private, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return false, fmt.Errorf("make an identity assertion signing key: %w", err)
	}
	sealed, err := k.cfg.Sealer.Seal(private.Seed())
	if err != nil {
		return false, fmt.Errorf("seal an identity assertion signing key: %w", err)
	}
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	rec := SigningKeyRecord{ID: hex.EncodeToString(id), Sealed: sealed, Public: public, CreatedAt: created.UTC(), SignsFrom: signsFrom.UTC()}
	added, err := k.cfg.Store.AddSigningKey(ctx, rec, unless.UTC())
	if err != nil {
		return false, fmt.Errorf("store an identity assertion signing key: %w", err)
	}
	return added, nil
}

// expired are the keys no assertion signed with is still valid for: those
// a newer key replaced longer ago than TTL and Grace.
func (k *AssertionKeys) expired(ring *keyRing, now time.Time) []string {
	var gone []string
	for i, rk := range ring.keys {
		// The first later key that signs by now replaced rk when it began.
		for _, later := range ring.keys[i+1:] {
			if later.private != nil && !later.signsFrom.After(now) {
				if later.signsFrom.Add(k.cfg.TTL + k.cfg.Grace).Before(now) {
					gone = append(gone, rk.id)
				}
				break
			}
		}
	}
	return gone
}

// newest is the key created last; the zero key when there is none.
func (ring *keyRing) newest() ringKey {
	if len(ring.keys) == 0 {
		return ringKey{}
	}
	return ring.keys[len(ring.keys)-1]
}

// usable is the newest key that can sign; nil when none can.
func (ring *keyRing) usable() *ringKey {
	for i := len(ring.keys) - 1; i >= 0; i-- {
		if ring.keys[i].private != nil {
			return &ring.keys[i]
		}
	}
	return nil
}

// signer is the key that signs at now: the newest usable one whose
// SignsFrom has come, or, before any has, the oldest usable one.
func (ring *keyRing) signer(now time.Time) *ringKey {
	var first *ringKey
	for i := len(ring.keys) - 1; i >= 0; i-- {
		rk := &ring.keys[i]
		if rk.private == nil {
			continue
		}
		if !rk.signsFrom.After(now) {
			return rk
		}
		first = rk
	}
	return first
}

// Run calls Maintain every interval until ctx ends, logging a failure
// once until it succeeds again, and meanwhile keeps signature nonces
// ready (edsign.go). It returns when both have stopped.
func (k *AssertionKeys) Run(ctx context.Context, interval time.Duration) {
	var fill sync.WaitGroup
	fill.Go(func() { k.nonces.fill(ctx) })
	defer fill.Wait()
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := k.Maintain(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			k.cfg.Logger.Warn("identity assertion keys could not be maintained; signing goes on with the keys held", "err", err)
			failing = true
		case err == nil:
			failing = false
		}
	}
}

// JWKS is the public keys, as served at /.well-known/jwks.json.
func (k *AssertionKeys) JWKS() []byte { return k.state.Load().jwks }

// ErrNoSigningKey is returned by Sign when no key can sign.
var ErrNoSigningKey = errors.New("no identity assertion signing key can be used")

// Assertion is what one assertion says beyond what AssertionKeys adds
// (iss, iat, nbf, exp, jti).
type Assertion struct {
	Client     Identity
	Audience   string
	UpstreamID string
	Method     string
	Name       string
	RequestID  json.RawMessage
	Headers    []assertion.Header
}

// Sign returns the signed assertion a, valid for TTL from now.
func (k *AssertionKeys) Sign(a Assertion) (string, error) {
	now := k.cfg.Now()
	key := k.state.Load().signer(now)
	if key == nil {
		return "", ErrNoSigningKey
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	iat := jwt.NewNumericDate(now)
	c := &assertion.Claims{
		Issuer: k.cfg.Issuer, Subject: a.Client.Subject, ClientIssuer: a.Client.Issuer,
		Audience: a.Audience, UpstreamID: a.UpstreamID, Method: a.Method, Name: a.Name, RequestID: a.RequestID,
		Headers: assertion.Names(a.Headers), HeaderDigest: assertion.HeaderDigest(a.Headers),
		IssuedAt: iat, NotBefore: iat, ExpiresAt: jwt.NewNumericDate(now.Add(k.cfg.TTL)),
		ID: base64.RawURLEncoding.EncodeToString(jti[:]),
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode the identity assertion: %w", err)
	}
	// The compact JWS (RFC 7515 §7.1) built in one buffer: the protected
	// header depends on the key alone, and the signature is one Ed25519
	// signature with a nonce made ahead of time (edsign.go).
	head := key.jose
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(head)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(ed25519.SignatureSize))
	buf = append(buf, head...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	n := k.nonces.take()
	var sig [ed25519.SignatureSize]byte
	key.signing.sign(sig[:0], &n, buf)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig[:])
	return string(buf), nil
}

// joseHeader is the encoded protected header of assertions signed with key
// kid: alg, typ and kid, as the verifier requires.
func joseHeader(kid string) string {
	h, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{assertion.Algorithm, kid, assertion.Type})
	return base64.RawURLEncoding.EncodeToString(h)
}
