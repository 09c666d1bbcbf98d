-- Many changes in one write (POST /write): applied in order in one transaction, all or none,
-- as one revision. The changelog records them in one row, operation 'write', with the
-- changes that changed something, in order, in `changes`: a JSON array of objects with the
-- keys op, group, user, resource, action, parent and expires_at_ms (absent when unused).
-- One row per revision still, so that a page of the changelog holds whole revisions.
SET LOCAL lock_timeout = '10s';
ALTER TABLE changelog ADD COLUMN changes TEXT;

-- One change of a write, applied to the tables, without the revision or the changelog: the
-- caller holds the tenant row's lock. Returns 'changed', 'unchanged', 'group_not_found',
-- 'parent_not_found', 'cycle' or 'too_deep', as rbac_write and rbac_nest answer.
CREATE FUNCTION rbac_apply(
    p_tenant    TEXT,
    p_operation TEXT,
    p_group     TEXT,
    p_user      TEXT,
    p_resource  TEXT,
    p_action    TEXT,
    p_parent    TEXT,
    p_expires   BIGINT,
    p_max_depth INTEGER
) RETURNS TEXT LANGUAGE plpgsql AS $$
DECLARE
    touched BIGINT;
    above   INTEGER;
    below   INTEGER;
BEGIN
    IF p_operation IN ('add-permission', 'assign-user', 'nest-group')
       AND NOT EXISTS (SELECT 1 FROM groups WHERE tenant = p_tenant AND name = p_group) THEN
        RETURN 'group_not_found';
    END IF;
    IF p_operation = 'nest-group' THEN
        IF NOT EXISTS (SELECT 1 FROM groups WHERE tenant = p_tenant AND name = p_parent) THEN
            RETURN 'parent_not_found';
        END IF;
        IF EXISTS (SELECT 1 FROM nestings WHERE tenant = p_tenant AND group_name = p_group
                   AND parent_name = p_parent) THEN
            RETURN 'unchanged';
        END IF;
        IF p_group = p_parent OR EXISTS (
            WITH RECURSIVE up (name) AS (
                SELECT parent_name FROM nestings
                WHERE tenant = p_tenant AND group_name = p_parent
                UNION
                SELECT n.parent_name FROM nestings n JOIN up ON n.group_name = up.name
                WHERE n.tenant = p_tenant
            )
            SELECT 1 FROM up WHERE name = p_group
        ) THEN
            RETURN 'cycle';
        END IF;
        WITH RECURSIVE up (name, depth) AS (
            SELECT p_parent, 1
            UNION
            SELECT n.parent_name, up.depth + 1 FROM nestings n JOIN up ON n.group_name = up.name
            WHERE n.tenant = p_tenant AND up.depth <= p_max_depth
        )
        SELECT max(depth) INTO above FROM up;
        WITH RECURSIVE down (name, depth) AS (
            SELECT p_group, 1
            UNION
            SELECT n.group_name, down.depth + 1 FROM nestings n JOIN down ON n.parent_name = down.name
            WHERE n.tenant = p_tenant AND down.depth <= p_max_depth
        )
        SELECT max(depth) INTO below FROM down;
        IF above + below > p_max_depth THEN
            RETURN 'too_deep';
        END IF;
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
            INSERT INTO assignments (tenant, group_name, user_name, expires_at_ms)
            VALUES (p_tenant, p_group, p_user, p_expires)
            ON CONFLICT (tenant, group_name, user_name) DO UPDATE
                SET expires_at_ms = EXCLUDED.expires_at_ms
                WHERE assignments.expires_at_ms IS DISTINCT FROM EXCLUDED.expires_at_ms;
        WHEN 'unassign-user' THEN
            DELETE FROM assignments WHERE tenant = p_tenant AND group_name = p_group
                AND user_name = p_user;
        WHEN 'nest-group' THEN
            INSERT INTO nestings (tenant, group_name, parent_name)
            VALUES (p_tenant, p_group, p_parent);
        WHEN 'unnest-group' THEN
            DELETE FROM nestings WHERE tenant = p_tenant AND group_name = p_group
                AND parent_name = p_parent;
        ELSE
            RAISE EXCEPTION 'unknown operation %', p_operation;
    END CASE;
    GET DIAGNOSTICS touched = ROW_COUNT;
    RETURN CASE WHEN touched = 0 THEN 'unchanged' ELSE 'changed' END;
END;
$$;

-- One change, whole: the tenant row's lock, the change through rbac_apply, and when it
-- changed something the revision and the changelog row. rbac_write and rbac_nest are this,
-- so that what each operation does is written once, in rbac_apply. A tenant never written
-- has nothing to change but by create-group: adding needs a group, removing finds nothing,
-- and no tenant row is made for it.
CREATE FUNCTION rbac_write_change(
    p_tenant    TEXT,
    p_operation TEXT,
    p_group     TEXT,
    p_user      TEXT,
    p_resource  TEXT,
    p_action    TEXT,
    p_parent    TEXT,
    p_expires   BIGINT,
    p_server    TEXT,
    p_actor     TEXT,
    p_max_depth INTEGER,
    OUT o_outcome  TEXT,
    OUT o_revision BIGINT
) LANGUAGE plpgsql AS $$
DECLARE
    held BIGINT;
BEGIN
    SELECT revision INTO held FROM tenants WHERE name = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        IF p_operation <> 'create-group' THEN
            o_revision := 0;
            o_outcome := CASE WHEN p_operation IN ('add-permission', 'assign-user', 'nest-group')
                              THEN 'group_not_found' ELSE 'unchanged' END;
            RETURN;
        END IF;
        -- Two first writes at once: the second waits here for the first to commit.
        INSERT INTO tenants (name) VALUES (p_tenant) ON CONFLICT (name) DO NOTHING;
        SELECT revision INTO held FROM tenants WHERE name = p_tenant FOR UPDATE;
    END IF;
    o_revision := held;
    o_outcome := rbac_apply(p_tenant, p_operation, p_group, p_user, p_resource, p_action,
                            p_parent, p_expires, p_max_depth);
    IF o_outcome <> 'changed' THEN
        RETURN;
    END IF;
    UPDATE tenants SET revision = revision + 1 WHERE name = p_tenant
        RETURNING revision INTO o_revision;
    INSERT INTO changelog
        (tenant, revision, operation, group_name, user_name, resource, action, parent,
         expires_at_ms, server_id, actor)
    VALUES (p_tenant, o_revision, p_operation, p_group, p_user, p_resource, p_action, p_parent,
            p_expires, p_server, p_actor);
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
    p_expires   BIGINT,
    OUT o_outcome  TEXT,
    OUT o_revision BIGINT
) LANGUAGE sql AS $$
    SELECT * FROM rbac_write_change(p_tenant, p_operation, p_group, p_user, p_resource,
                                    p_action, NULL, p_expires, p_server, p_actor, 0);
$$;

CREATE OR REPLACE FUNCTION rbac_nest(
    p_tenant    TEXT,
    p_operation TEXT,
    p_group     TEXT,
    p_parent    TEXT,
    p_server    TEXT,
    p_actor     TEXT,
    p_max_depth INTEGER,
    OUT o_outcome  TEXT,
    OUT o_revision BIGINT
) LANGUAGE sql AS $$
    SELECT * FROM rbac_write_change(p_tenant, p_operation, p_group, NULL, NULL, NULL, p_parent,
                                    NULL, p_server, p_actor, p_max_depth);
$$;

-- A write of many changes, in one statement: the tenant row's lock, then each change in
-- order through rbac_apply, then, if any changed, one revision and one changelog row. A
-- change that cannot be made undoes the others (the block's exception handler rolls back
-- to its start) and is the outcome, whether or not the caller runs this in a transaction
-- of its own: o_outcome is then that change's (as rbac_apply answers) and o_index its place,
-- from 0. Otherwise o_outcome is 'changed' or 'unchanged' and o_changed says, one character
-- per change, '1' for each that changed something and '0' for the others. With
-- p_if_revision, a tenant at another revision is 'revision_mismatch' and nothing is applied.
CREATE FUNCTION rbac_write_many(
    p_tenant      TEXT,
    p_changes     TEXT,
    p_if_revision BIGINT,
    p_server      TEXT,
    p_actor       TEXT,
    p_max_depth   INTEGER,
    OUT o_outcome  TEXT,
    OUT o_index    INTEGER,
    OUT o_revision BIGINT,
    OUT o_changed  TEXT
) LANGUAGE plpgsql AS $$
DECLARE
    held    BIGINT;
    created BOOLEAN := FALSE;
    change  JSONB;
    at      INTEGER := 0;
    outcome TEXT;
BEGIN
    o_changed := '';
    SELECT revision INTO held FROM tenants WHERE name = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO tenants (name) VALUES (p_tenant) ON CONFLICT (name) DO NOTHING;
        SELECT revision INTO held FROM tenants WHERE name = p_tenant FOR UPDATE;
        created := held = 0;
    END IF;
    o_revision := held;
    IF p_if_revision IS NOT NULL AND p_if_revision <> held THEN
        IF created THEN
            DELETE FROM tenants WHERE name = p_tenant;
        END IF;
        o_outcome := 'revision_mismatch';
        RETURN;
    END IF;

    BEGIN
        FOR change IN SELECT value FROM jsonb_array_elements(p_changes::jsonb) LOOP
            outcome := rbac_apply(p_tenant, change->>'op', change->>'group', change->>'user',
                                  change->>'resource', change->>'action', change->>'parent',
                                  (change->>'expires_at_ms')::BIGINT, p_max_depth);
            IF outcome NOT IN ('changed', 'unchanged') THEN
                o_outcome := outcome;
                o_index := at;
                -- Undoes every change of this block, and the tenant row it may have made.
                RAISE EXCEPTION USING ERRCODE = 'RBW01';
            END IF;
            o_changed := o_changed || CASE WHEN outcome = 'changed' THEN '1' ELSE '0' END;
            at := at + 1;
        END LOOP;
    EXCEPTION WHEN SQLSTATE 'RBW01' THEN
        IF created THEN
            DELETE FROM tenants WHERE name = p_tenant;
        END IF;
        RETURN;
    END;

    IF position('1' IN o_changed) = 0 THEN
        -- Nothing changed: no revision, no changelog row, and no tenant row made for it.
        IF created THEN
            DELETE FROM tenants WHERE name = p_tenant;
        END IF;
        o_outcome := 'unchanged';
        RETURN;
    END IF;
    UPDATE tenants SET revision = revision + 1 WHERE name = p_tenant
        RETURNING revision INTO o_revision;
    INSERT INTO changelog (tenant, revision, operation, group_name, server_id, actor, changes)
    SELECT p_tenant, o_revision, 'write', '', p_server, p_actor, jsonb_agg(e.value ORDER BY e.n)::text
    FROM jsonb_array_elements(p_changes::jsonb) WITH ORDINALITY AS e (value, n)
    WHERE substr(o_changed, e.n::INTEGER, 1) = '1';
    o_outcome := 'changed';
END;
$$;
