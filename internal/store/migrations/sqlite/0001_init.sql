-- mcpgate's first schema, SQLite. A migration runs in one transaction and is
-- recorded in schema_migrations; never edit a released one, add the next.
-- postgres/0001_init.sql is the same schema in PostgreSQL's types.

-- upstreams are the registered MCP servers (ContextForge: gateways).
CREATE TABLE upstreams (
    id                  TEXT PRIMARY KEY,      -- UUID v4
    name                TEXT NOT NULL,
    name_key            TEXT NOT NULL UNIQUE,  -- the name lower-cased: names are unique case-insensitively
    slug                TEXT NOT NULL UNIQUE,
    url                 TEXT NOT NULL,
    transport           TEXT NOT NULL,         -- STREAMABLEHTTP | SSE
    auth_type           TEXT NOT NULL,         -- none | basic | bearer | authheaders | oauth
    auth_secret         BLOB,                  -- the encrypted credentials; NULL when none
    passthrough_headers TEXT,                  -- JSON array of header names; NULL inherits the global list (spec §3, D5)
    enabled             BOOLEAN NOT NULL,
    status              TEXT NOT NULL,         -- available | unavailable | …
    status_reason       TEXT NOT NULL,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL,
    version             INTEGER NOT NULL       -- 1, then +1 on every update: optimistic concurrency
);

-- catalogues hold what each upstream offers: JSON arrays of the items exactly
-- as the upstream sent them.
CREATE TABLE catalogues (
    upstream_id        TEXT PRIMARY KEY REFERENCES upstreams (id) ON DELETE CASCADE,
    tools              TEXT NOT NULL,
    resources          TEXT NOT NULL,
    resource_templates TEXT NOT NULL,
    prompts            TEXT NOT NULL,
    refreshed_at       TIMESTAMP NOT NULL
);

-- global_config is at most one row, id 1: the stored global passthrough list
-- (spec §3). An absent row and a NULL list mean different things.
CREATE TABLE global_config (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    passthrough_headers TEXT                   -- JSON array of header names, or NULL
);
