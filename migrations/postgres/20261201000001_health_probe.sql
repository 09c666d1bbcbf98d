-- One row that a health check rewrites while writes are failing (a full disk, say), to learn
-- when the store takes writes again without waiting for a client's write to succeed.
CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at TIMESTAMPTZ NOT NULL
);
