-- When each API key was last presented, to the minute or so: each instance notes the uses it
-- sees in memory and writes them at its sweep, so that no request waits on a write. NULL:
-- never used since this column exists. Adding a nullable column rewrites nothing.
SET LOCAL lock_timeout = '10s';
ALTER TABLE api_keys ADD COLUMN last_used_at TIMESTAMPTZ;
