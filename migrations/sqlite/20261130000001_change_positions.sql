-- Where an instance's sweep resumes (as in migrations/postgres/): each instance asks what
-- changed since its last look, at a cost in proportion to the changes, not to the tenants.
--
-- SQLite commits one write at a time, so a number taken inside the write's transaction
-- orders the changes as they commit: a reader that has seen number N has seen every change up
-- to N. `changed_seq` is the number of the tenant's latest change. A trigger sets it, so that
-- every writer of the file numbers its changes, whatever release it runs; only when the
-- revision moves (a write takes the tenant's row with an update that leaves it as it is).
ALTER TABLE tenants ADD COLUMN changed_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tenants_changed_seq ON tenants (changed_seq);
CREATE TRIGGER tenants_number_changes AFTER UPDATE OF revision ON tenants
WHEN NEW.revision <> OLD.revision
BEGIN
    UPDATE tenants SET changed_seq = (SELECT MAX(changed_seq) FROM tenants) + 1
    WHERE name = NEW.name;
END;
