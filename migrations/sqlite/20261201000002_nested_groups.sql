-- Groups inside groups (see migrations/postgres/): `group_name` is a member of `parent_name`.
-- Deleting either group deletes the nesting.
CREATE TABLE nestings (
    tenant      TEXT NOT NULL,
    group_name  TEXT NOT NULL,
    parent_name TEXT NOT NULL,
    PRIMARY KEY (tenant, group_name, parent_name),
    FOREIGN KEY (tenant, group_name) REFERENCES groups (tenant, name) ON DELETE CASCADE,
    FOREIGN KEY (tenant, parent_name) REFERENCES groups (tenant, name) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX nestings_parent ON nestings (tenant, parent_name);

-- The parent of a nest-group or unnest-group change; NULL for every other operation.
ALTER TABLE changelog ADD COLUMN parent TEXT;
