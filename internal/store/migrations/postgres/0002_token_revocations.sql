-- token_revocations are the client tokens an administrator revoked: one
-- token by its jti, or every token of a subject issued up to revoked_at.
-- sqlite/0002_token_revocations.sql is the same in SQLite's types.
CREATE TABLE token_revocations (
    id         TEXT PRIMARY KEY,   -- random, for DELETE /admin/tokens/revocations/{id}
    kind       TEXT NOT NULL,      -- jti | subject
    issuer     TEXT NOT NULL,      -- subject: the tokens' iss (mcpgate for mcpgate's own); jti: ''
    value      TEXT NOT NULL,      -- the jti, or the subject
    reason     TEXT NOT NULL,
    revoked_by TEXT NOT NULL,      -- the administrator's identity
    revoked_at TIMESTAMPTZ NOT NULL, -- subject: tokens issued up to then are refused
    UNIQUE (kind, issuer, value)
);
