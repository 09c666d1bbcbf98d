-- Tenant-scoped API keys, and who made each change.

-- The credential behind each change: `key:<id>` for an API key, `token:<fingerprint>` for a
-- global ADMIN_TOKEN, NULL when writes were open (no ADMIN_TOKEN set). Rows written before
-- this column existed have NULL too.
ALTER TABLE changelog ADD COLUMN actor TEXT;

-- Keys are never deleted, only revoked, so that every `key:<id>` in the changelog stays
-- explained. Only the SHA-256 of a key's secret is kept; the key itself is shown once.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT,
    -- NULL: every tenant.
    tenant      TEXT,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'check')),
    secret_hash BYTEA NOT NULL CHECK (octet_length(secret_hash) = 32),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by  TEXT,
    revoked_at  TIMESTAMPTZ
);

-- rbac_write with the actor. The body is the one of migration 3 plus the actor; the old
-- seven-argument function now calls this one, so that instances of the previous release keep
-- writing during a rolling upgrade.
CREATE FUNCTION rbac_write(
    p_tenant    TEXT,
    p_operation TEXT,
    p_group     TEXT,
    p_user      TEXT,
    p_resource  TEXT,
    p_action    TEXT,
    p_server    TEXT,
    p_actor     TEXT,
    OUT o_outcome  TEXT,
    OUT o_revision BIGINT
) LANGUAGE plpgsql AS $$
DECLARE
    held    BIGINT;
    touched BIGINT;
BEGIN
    -- The tenant row's lock serializes the writes of one tenant across every instance.
    SELECT revision INTO held FROM tenants WHERE name = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        IF p_operation <> 'create-group' THEN
            o_revision := 0;
            o_outcome := CASE WHEN p_operation IN ('add-permission', 'assign-user')
                              THEN 'group_not_found' ELSE 'unchanged' END;
            RETURN;
        END IF;
        INSERT INTO tenants (name) VALUES (p_tenant) ON CONFLICT (name) DO NOTHING;
        SELECT revision INTO held FROM tenants WHERE name = p_tenant FOR UPDATE;
    END IF;

    IF p_operation IN ('add-permission', 'assign-user')
       AND NOT EXISTS (SELECT 1 FROM groups WHERE tenant = p_tenant AND name = p_group) THEN
        o_outcome := 'group_not_found';
        o_revision := held;
        RETURN;
    END IF;

    CASE p_operation
        WHEN 'create-group' THEN
            INSERT INTO groups (tenant, name) VALUES (p_tenant, p_group) ON CONFLICT DO NOTHING;
        WHEN 'delete-group' THEN
            DELETE FROM groups WHERE tenant = p_tenant AND name = p_group;
        WHEN 'add-permission' THEN
            INSERT INTO permissions (tenant, group_name, resource, action)
            VALUES (p_tenant, p_group, p_resource, p_action) ON CONFLICT DO NOTHING;
        WHEN 'remove-permission' THEN
            DELETE FROM permissions WHERE tenant = p_tenant AND group_name = p_group
                AND resource = p_resource AND action = p_action;
        WHEN 'assign-user' THEN
            INSERT INTO assignments (tenant, group_name, user_name)
            VALUES (p_tenant, p_group, p_user) ON CONFLICT DO NOTHING;
        WHEN 'unassign-user' THEN
            DELETE FROM assignments WHERE tenant = p_tenant AND group_name = p_group
                AND user_name = p_user;
        ELSE
            RAISE EXCEPTION 'unknown operation %', p_operation;
    END CASE;
    GET DIAGNOSTICS touched = ROW_COUNT;

    IF touched = 0 THEN
        o_outcome := 'unchanged';
        o_revision := held;
        RETURN;
    END IF;
    UPDATE tenants SET revision = revision + 1 WHERE name = p_tenant
        RETURNING revision INTO o_revision;
    INSERT INTO changelog
        (tenant, revision, operation, group_name, user_name, resource, action, server_id, actor)
    VALUES (p_tenant, o_revision, p_operation, p_group, p_user, p_resource, p_action, p_server,
            p_actor);
    o_outcome := 'changed';
END;
$$;

CREATE OR REPLACE FUNCTION rbac_write(
    p_tenant    TEXT,
    p_operation TEXT,
    p_group     TEXT,
    p_user      TEXT,
    p_resource  TEXT,
    p_action    TEXT,
    p_server    TEXT,
    OUT o_outcome  TEXT,
    OUT o_revision BIGINT
) LANGUAGE sql AS $$
    SELECT * FROM rbac_write(p_tenant, p_operation, p_group, p_user, p_resource, p_action,
                             p_server, NULL);
$$;
