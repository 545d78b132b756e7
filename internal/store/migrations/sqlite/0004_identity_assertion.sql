-- The signed identity assertion (docs/identity-assertion.md): which upstreams
-- get one, and mcpgate's signing keys. postgres/0004_identity_assertion.sql is
-- the same in PostgreSQL's types.

-- identity_assertion: mcpgate adds its signed assertion to every request it
-- forwards to this upstream for a client (opt-in).
ALTER TABLE upstreams ADD COLUMN identity_assertion BOOLEAN NOT NULL DEFAULT FALSE;

-- signing_keys are mcpgate's Ed25519 keys for the assertion, shared by every
-- instance: published in /.well-known/jwks.json from created_at, signing from
-- signs_from, removed once every assertion they signed has expired.
CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY,   -- the JWS kid
    algorithm   TEXT NOT NULL,      -- EdDSA
    private_key BLOB NOT NULL,      -- the 32-byte seed, sealed with AUTH_ENCRYPTION_SECRET
    public_key  BLOB NOT NULL,      -- 32 bytes
    created_at  TIMESTAMP NOT NULL,
    signs_from  TIMESTAMP NOT NULL
);
