-- What the client asked for with an Idempotency-Key, so the same key sent with a different
-- request is refused instead of silently answered with the first order.
ALTER TABLE orders ADD COLUMN request_fingerprint text;
