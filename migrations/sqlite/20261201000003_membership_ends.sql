-- Memberships that end (see migrations/postgres/): milliseconds since the Unix epoch, UTC;
-- NULL when the membership does not end. The changelog records the end an assign-user set.
ALTER TABLE assignments ADD COLUMN expires_at_ms INTEGER;
ALTER TABLE changelog ADD COLUMN expires_at_ms INTEGER;
