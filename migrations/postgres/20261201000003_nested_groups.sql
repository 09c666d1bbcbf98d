-- Groups inside groups: a row says that `group_name` is a member of `parent_name`, so that
-- every member of the group has the parent's permissions. Deleting either group deletes the
-- nesting. The index finds the groups nested in a parent, which the cycle and depth checks
-- below walk down.
CREATE TABLE nestings (
    tenant      TEXT NOT NULL,
    group_name  TEXT NOT NULL,
    parent_name TEXT NOT NULL,
    PRIMARY KEY (tenant, group_name, parent_name),
    FOREIGN KEY (tenant, group_name) REFERENCES groups (tenant, name) ON DELETE CASCADE,
    FOREIGN KEY (tenant, parent_name) REFERENCES groups (tenant, name) ON DELETE CASCADE
);
CREATE INDEX nestings_parent ON nestings (tenant, parent_name);

-- The parent of a nest-group or unnest-group change; NULL for every other operation. Adding
-- a nullable column rewrites nothing.
SET LOCAL lock_timeout = '10s';
ALTER TABLE changelog ADD COLUMN parent TEXT;

-- A nesting write, whole, in one round trip, as rbac_write makes the others: the tenant
-- row's lock first, then the checks, the change, the revision and the changelog row.
-- o_outcome is 'changed', 'unchanged', 'group_not_found', 'parent_not_found', 'cycle' or
-- 'too_deep'. p_max_depth is the most groups a chain of nestings may hold (the server's
-- MAX_NESTING_DEPTH): the longest chain above the parent plus the longest below the group.
-- The walks use UNION, not UNION ALL, so that a graph with many paths between two groups is
-- walked once per group and depth, not once per path.
CREATE FUNCTION rbac_nest(
    p_tenant    TEXT,
    p_operation TEXT,
    p_group     TEXT,
    p_parent    TEXT,
    p_server    TEXT,
    p_actor     TEXT,
    p_max_depth INTEGER,
    OUT o_outcome  TEXT,
    OUT o_revision BIGINT
) LANGUAGE plpgsql AS $$
DECLARE
    held    BIGINT;
    touched BIGINT;
    above   INTEGER;
    below   INTEGER;
BEGIN
    SELECT revision INTO held FROM tenants WHERE name = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        o_revision := 0;
        o_outcome := CASE WHEN p_operation = 'nest-group' THEN 'group_not_found'
                          ELSE 'unchanged' END;
        RETURN;
    END IF;
    o_revision := held;

    IF p_operation = 'nest-group' THEN
        IF NOT EXISTS (SELECT 1 FROM groups WHERE tenant = p_tenant AND name = p_group) THEN
            o_outcome := 'group_not_found';
            RETURN;
        END IF;
        IF NOT EXISTS (SELECT 1 FROM groups WHERE tenant = p_tenant AND name = p_parent) THEN
            o_outcome := 'parent_not_found';
            RETURN;
        END IF;
        IF EXISTS (SELECT 1 FROM nestings WHERE tenant = p_tenant AND group_name = p_group
                   AND parent_name = p_parent) THEN
            o_outcome := 'unchanged';
            RETURN;
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
            o_outcome := 'cycle';
            RETURN;
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
            o_outcome := 'too_deep';
            RETURN;
        END IF;
        INSERT INTO nestings (tenant, group_name, parent_name) VALUES (p_tenant, p_group, p_parent);
    ELSIF p_operation = 'unnest-group' THEN
        DELETE FROM nestings WHERE tenant = p_tenant AND group_name = p_group
            AND parent_name = p_parent;
    ELSE
        RAISE EXCEPTION 'not a nesting operation: %', p_operation;
    END IF;
    GET DIAGNOSTICS touched = ROW_COUNT;

    IF touched = 0 THEN
        o_outcome := 'unchanged';
        RETURN;
    END IF;
    UPDATE tenants SET revision = revision + 1 WHERE name = p_tenant
        RETURNING revision INTO o_revision;
    INSERT INTO changelog (tenant, revision, operation, group_name, parent, server_id, actor)
    VALUES (p_tenant, o_revision, p_operation, p_group, p_parent, p_server, p_actor);
    o_outcome := 'changed';
END;
$$;
