-- processed_events was never written: every consumer deduplicates by its own natural keys
-- (status transitions, stock versions, notification claims), so it only grew the schema.
DROP TABLE IF EXISTS processed_events;

-- Sessions whose refresh token expired are deleted by the edge in small batches; this index
-- finds them without reading the whole table.
CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expires_at);
