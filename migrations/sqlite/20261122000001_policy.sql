-- The policy store, embedded: the same tables as the PostgreSQL schema
-- (migrations/postgres/), in one SQLite file that several instances on one machine may share.
-- SQLite compares TEXT byte for byte by default (BINARY collation), as the API promises.

-- One row per tenant ever written. `revision` counts the writes that changed something, so
-- it is also the number of the newest changelog entry. Writes run in BEGIN IMMEDIATE
-- transactions, which take the database's write lock up front: writes (of every tenant) are
-- serialized, and revisions are a gapless sequence.
CREATE TABLE tenants (
    name     TEXT PRIMARY KEY NOT NULL,
    revision INTEGER NOT NULL DEFAULT 0 CHECK (revision >= 0)
) WITHOUT ROWID;

-- A tenant's groups.
CREATE TABLE groups (
    tenant TEXT NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    name   TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
) WITHOUT ROWID;

-- What each group may do. Deleting a group deletes its permissions with it (foreign keys
-- are switched on for every connection).
CREATE TABLE permissions (
    tenant     TEXT NOT NULL,
    group_name TEXT NOT NULL,
    resource   TEXT NOT NULL,
    action     TEXT NOT NULL,
    PRIMARY KEY (tenant, group_name, resource, action),
    FOREIGN KEY (tenant, group_name) REFERENCES groups (tenant, name) ON DELETE CASCADE
) WITHOUT ROWID;

-- Who is in each group. Deleting a group deletes its memberships with it.
CREATE TABLE assignments (
    tenant     TEXT NOT NULL,
    group_name TEXT NOT NULL,
    user_name  TEXT NOT NULL,
    PRIMARY KEY (tenant, group_name, user_name),
    FOREIGN KEY (tenant, group_name) REFERENCES groups (tenant, name) ON DELETE CASCADE
) WITHOUT ROWID;

-- One row per changing write: what changed, which revision it made, when (UTC, RFC 3339 with
-- milliseconds, so text order is time order), and which server wrote it.
CREATE TABLE changelog (
    tenant     TEXT NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    revision   INTEGER NOT NULL,
    operation  TEXT NOT NULL,
    group_name TEXT NOT NULL,
    user_name  TEXT,
    resource   TEXT,
    action     TEXT,
    server_id  TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (tenant, revision)
) WITHOUT ROWID;

-- Retention deletes the changelog by age, across tenants.
CREATE INDEX changelog_created_at ON changelog (created_at);
