-- no-transaction
-- GET /tenants pages the tenants in the order of their names' bytes, as every other listing
-- orders names, whatever the database's collation: this index lets a page start at its
-- cursor, or at a prefix, and stop at its limit, in that order. Built concurrently, so that
-- the writes, which each update their tenant's row, do not wait for it.
CREATE INDEX CONCURRENTLY IF NOT EXISTS tenants_by_byte_order ON tenants (name COLLATE "C");
