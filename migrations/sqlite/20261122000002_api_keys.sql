-- Tenant-scoped API keys, and who made each change (as in migrations/postgres/).

-- `key:<id>`, `token:<fingerprint>`, or NULL when writes were open.
ALTER TABLE changelog ADD COLUMN actor TEXT;

-- Never deleted, only revoked; only the SHA-256 of a key's secret is kept. Timestamps are
-- UTC, RFC 3339 with milliseconds.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT,
    tenant      TEXT,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'check')),
    secret_hash BLOB NOT NULL CHECK (length(secret_hash) = 32),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    created_by  TEXT,
    revoked_at  TEXT
) WITHOUT ROWID;
