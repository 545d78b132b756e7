-- mcpgate's first schema, PostgreSQL. A migration runs in one transaction and
-- is recorded in schema_migrations; never edit a released one, add the next.
-- sqlite/0001_init.sql is the same schema in SQLite's types. JSON is kept as
-- TEXT, not jsonb: jsonb reorders keys, and catalogue items must come back
-- byte for byte.

-- upstreams are the registered MCP servers (ContextForge: gateways).
CREATE TABLE upstreams (
    id                  TEXT PRIMARY KEY,      -- UUID v4
    name                TEXT NOT NULL,
    name_key            TEXT NOT NULL UNIQUE,  -- the name lower-cased: names are unique case-insensitively
    slug                TEXT NOT NULL UNIQUE,
    url                 TEXT NOT NULL,
    transport           TEXT NOT NULL,         -- STREAMABLEHTTP | SSE
    auth_type           TEXT NOT NULL,         -- none | basic | bearer | authheaders | oauth
    auth_secret         BYTEA,                 -- the encrypted credentials; NULL when none
    passthrough_headers TEXT,                  -- JSON array of header names; NULL inherits the global list (spec §3, D5)
    enabled             BOOLEAN NOT NULL,
    status              TEXT NOT NULL,         -- available | unavailable | …
    status_reason       TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    version             BIGINT NOT NULL        -- 1, then +1 on every update: optimistic concurrency
);

-- catalogues hold what each upstream offers: JSON arrays of the items exactly
-- as the upstream sent them.
CREATE TABLE catalogues (
    upstream_id        TEXT PRIMARY KEY REFERENCES upstreams (id) ON DELETE CASCADE,
    tools              TEXT NOT NULL,
    resources          TEXT NOT NULL,
    resource_templates TEXT NOT NULL,
    prompts            TEXT NOT NULL,
    refreshed_at       TIMESTAMPTZ NOT NULL
);

-- global_config is at most one row, id 1: the stored global passthrough list
-- (spec §3). An absent row and a NULL list mean different things.
CREATE TABLE global_config (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    passthrough_headers TEXT                   -- JSON array of header names, or NULL
);
