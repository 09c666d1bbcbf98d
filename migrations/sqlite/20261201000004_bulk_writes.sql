-- Many changes in one write (see migrations/postgres/): one changelog row, operation
-- 'write', with the changes that changed something, in order, as a JSON array.
ALTER TABLE changelog ADD COLUMN changes TEXT;
