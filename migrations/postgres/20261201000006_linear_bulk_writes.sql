-- rbac_write_many, linear in the number of changes: the one it replaces kept which changes
-- changed something in a string, appended to once per change and read one character per
-- change by position, both of which copy or scan the whole string in PostgreSQL, so a write of
-- a million changes (a policy document of a large tenant) spent minutes on them. The flags are
-- now a boolean array, which PL/pgSQL appends to in place and a query indexes directly; the
-- string the caller reads is made from it once. What the function does and answers is the
-- same, outcome for outcome.
CREATE OR REPLACE FUNCTION rbac_write_many(
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
    flags   BOOLEAN[] := '{}';
    any_changed BOOLEAN := FALSE;
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
            flags := flags || (outcome = 'changed');
            any_changed := any_changed OR outcome = 'changed';
            at := at + 1;
        END LOOP;
    EXCEPTION WHEN SQLSTATE 'RBW01' THEN
        IF created THEN
            DELETE FROM tenants WHERE name = p_tenant;
        END IF;
        RETURN;
    END;

    SELECT coalesce(string_agg(CASE WHEN f THEN '1' ELSE '0' END, '' ORDER BY n), '')
    INTO o_changed
    FROM unnest(flags) WITH ORDINALITY AS u (f, n);
    IF NOT any_changed THEN
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
    WHERE flags[e.n];
    o_outcome := 'changed';
END;
$$;
