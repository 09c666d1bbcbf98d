-- Changelog retention (CHANGELOG_RETENTION_HOURS) deletes entries by age across all tenants;
-- this index keeps that a range scan instead of a pass over the whole history.
CREATE INDEX changelog_created_at ON changelog (created_at);
