-- no-transaction
-- The sweep's look-up of the changes since a position (20261130000001_change_positions.sql),
-- built without blocking the writes that append to the changelog meanwhile; rows from before
-- that migration have no id, and no place in it. One statement: a concurrent build cannot run
-- inside a transaction, which several statements of one migration would make.
CREATE INDEX CONCURRENTLY IF NOT EXISTS changelog_xid ON changelog (xid) WHERE xid IS NOT NULL;
