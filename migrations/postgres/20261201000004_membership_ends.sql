-- Memberships that end: from `expires_at_ms` (milliseconds since the Unix epoch, UTC) on, a
-- check denies what the membership granted, on every instance, by its own clock; no write
-- is made then. NULL: the membership does not end. The changelog records the end an
-- assign-user set. Integers rather than timestamps so that both stores keep the same value,
-- to the millisecond, and the policy compares them as they are. Adding nullable columns
-- rewrites nothing.
SET LOCAL lock_timeout = '10s';
ALTER TABLE assignments ADD COLUMN expires_at_ms BIGINT;
ALTER TABLE changelog ADD COLUMN expires_at_ms BIGINT;

-- rbac_write with the end of a membership. The body is the one of migration 5 with the end;
-- the eight-argument function now calls this one with none, so that instances of the
-- previous release keep writing during a rolling upgrade (an assignment they make does not
-- end, as it did not before).
CREATE FUNCTION rbac_write(
    p_tenant    TEXT,
    p_operation TEXT,
    p_group     TEXT,
    p_user      TEXT,
    p_resource  TEXT,
    p_action    TEXT,
    p_server    TEXT,
    p_actor     TEXT,
    p_expires   BIGINT,
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
            -- A member already: the write changes when the membership ends, if it differs.
            INSERT INTO assignments (tenant, group_name, user_name, expires_at_ms)
            VALUES (p_tenant, p_group, p_user, p_expires)
            ON CONFLICT (tenant, group_name, user_name) DO UPDATE
                SET expires_at_ms = EXCLUDED.expires_at_ms
                WHERE assignments.expires_at_ms IS DISTINCT FROM EXCLUDED.expires_at_ms;
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
        (tenant, revision, operation, group_name, user_name, resource, action, server_id, actor,
         expires_at_ms)
    VALUES (p_tenant, o_revision, p_operation, p_group, p_user, p_resource, p_action, p_server,
            p_actor, p_expires);
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
    p_actor     TEXT,
    OUT o_outcome  TEXT,
    OUT o_revision BIGINT
) LANGUAGE sql AS $$
    SELECT * FROM rbac_write(p_tenant, p_operation, p_group, p_user, p_resource, p_action,
                             p_server, p_actor, NULL);
$$;
