-- access_rules is at most one row, id 1: the per-client access rules
-- (PUT /admin/access) as one JSON array, replaced whole, so that a reader
-- never sees half of an update. No row: no rules.
CREATE TABLE access_rules (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    rules      TEXT NOT NULL,      -- JSON array of {"subject"|"group"|"scope", "issuer"?, "upstreams"}
    updated_at TIMESTAMPTZ NOT NULL
);
