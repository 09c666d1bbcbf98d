-- The policy store. PostgreSQL is the source of truth; every instance's cache is a copy of
-- what these tables say, at the revision recorded in `tenants`.

-- One row per tenant ever written. `revision` counts the writes that changed something, so
-- it is also the number of the newest changelog entry. Every write locks this row first
-- (INSERT ... ON CONFLICT DO UPDATE takes the row lock), which serializes the writes of one tenant across
-- every instance and makes revisions a gapless sequence; writes to different tenants never
-- wait on each other.
CREATE TABLE tenants (
    name     TEXT PRIMARY KEY,
    revision BIGINT NOT NULL DEFAULT 0 CHECK (revision >= 0)
);

-- A tenant's groups. Names are compared byte for byte, as the API promises.
CREATE TABLE groups (
    tenant TEXT NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    name   TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);

-- What each group may do. Deleting a group deletes its permissions with it.
CREATE TABLE permissions (
    tenant     TEXT NOT NULL,
    group_name TEXT NOT NULL,
    resource   TEXT NOT NULL,
    action     TEXT NOT NULL,
    PRIMARY KEY (tenant, group_name, resource, action),
    FOREIGN KEY (tenant, group_name) REFERENCES groups (tenant, name) ON DELETE CASCADE
);

-- Who is in each group. Deleting a group deletes its memberships with it.
CREATE TABLE assignments (
    tenant     TEXT NOT NULL,
    group_name TEXT NOT NULL,
    user_name  TEXT NOT NULL,
    PRIMARY KEY (tenant, group_name, user_name),
    FOREIGN KEY (tenant, group_name) REFERENCES groups (tenant, name) ON DELETE CASCADE
);

-- One row per changing write: what changed, which revision it made, when, and which server
-- wrote it. An instance a few revisions behind can replay these instead of reloading the
-- tenant, and an operator can read who changed what.
CREATE TABLE changelog (
    tenant     TEXT NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    revision   BIGINT NOT NULL,
    operation  TEXT NOT NULL,
    group_name TEXT NOT NULL,
    user_name  TEXT,
    resource   TEXT,
    action     TEXT,
    server_id  TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, revision)
);
