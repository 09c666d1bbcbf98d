-- When each API key was last presented, to the minute or so (see migrations/postgres/): UTC,
-- RFC 3339 with milliseconds like the other times. NULL: never used since this column exists.
ALTER TABLE api_keys ADD COLUMN last_used_at TEXT;
