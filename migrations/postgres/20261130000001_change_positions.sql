-- Where an instance's sweep resumes. Each instance knows which tenants exist and holds some of
-- them; every RESYNC_INTERVAL_SECS it asks what changed since its last look, which must cost
-- in proportion to the changes, not to the tenants.
--
-- A sequence number per change would not do: numbers are handed out before commit, so a
-- reader can see number 8 committed while number 7 is still to commit, step past it, and
-- never see it. Transaction ids tell what a reader may have missed: every change committed
-- after a reader's snapshot was taken has an id at or above that snapshot's xmin (the oldest
-- transaction still running then). So each changelog row records the id of the transaction
-- that wrote it, and a sweep that reads, in one statement, the tenants with changes at or
-- above its last xmin and the xmin of its own snapshot, misses nothing and rereads little.
-- (A transaction left open anywhere in the cluster holds xmin back: sweeps then reread the
-- changes since it began, until it ends.) xid8 is the 64-bit, never wrapping form of the id
-- (PostgreSQL 13 and newer).
--
-- A default rather than a parameter of rbac_write: instances of the previous release, during
-- a rolling upgrade, write rows that carry the id too. Rows written before this migration
-- have none, and are older than any snapshot a sweep starts from. Adding a nullable column
-- and a default rewrites nothing; the lock it takes is brief, and not waited for long behind
-- a long reader. The index is built in the next migration, without blocking writes.
SET LOCAL lock_timeout = '10s';
ALTER TABLE changelog ADD COLUMN xid xid8;
ALTER TABLE changelog ALTER COLUMN xid SET DEFAULT pg_current_xact_id();

-- Retention deletes old changelog rows, and with them the trace of the changes they record:
-- a sweep whose position is older than the newest transaction id retention deleted may have
-- missed changes, and compares every tenant instead. One row, once anything was deleted.
-- (Retention run by an instance of the previous release does not note what it deletes.)
CREATE TABLE changelog_pruned (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    xid       xid8 NOT NULL
);
