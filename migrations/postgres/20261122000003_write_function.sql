-- One write, whole, in one round trip: rbac_write locks the tenant, checks the change's
-- precondition, applies it, and when something changed bumps the revision and records the
-- change, all inside the caller's statement (so one transaction). The server used to send
-- these as five statements; on a loaded database the round trips were most of a write's cost.
--
-- o_outcome is 'changed', 'unchanged' or 'group_not_found'; o_revision is the tenant's
-- revision after the write. A write that changes nothing leaves no row behind, not even the
-- tenant's.
CREATE FUNCTION rbac_write(
    p_tenant    TEXT,
    p_operation TEXT,
    p_group     TEXT,
    p_user      TEXT,
    p_resource  TEXT,
    p_action    TEXT,
    p_server    TEXT,
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
            -- Nothing can exist in a tenant never written: adding needs a group, and
            -- removing finds nothing.
            o_revision := 0;
            o_outcome := CASE WHEN p_operation IN ('add-permission', 'assign-user')
                              THEN 'group_not_found' ELSE 'unchanged' END;
            RETURN;
        END IF;
        -- Two first writes at once: the second waits here for the first to commit.
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
        (tenant, revision, operation, group_name, user_name, resource, action, server_id)
    VALUES (p_tenant, o_revision, p_operation, p_group, p_user, p_resource, p_action, p_server);
    o_outcome := 'changed';
END;
$$;
