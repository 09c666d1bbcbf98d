-- GET /tenants pages the tenants in the order of their names' bytes, as every other listing
-- orders names, whatever the database's collation: this index lets a page start at its
-- cursor, or at a prefix, and stop at its limit, in that order.
CREATE INDEX tenants_by_byte_order ON tenants (name COLLATE "C");
