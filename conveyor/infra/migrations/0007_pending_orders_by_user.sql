-- The edge counts a user's pending orders before accepting a new one
-- (CONVEYOR_MAX_PENDING_ORDERS_PER_USER): this index makes that count read only the user's
-- pending orders, however many orders they placed before.
CREATE INDEX IF NOT EXISTS orders_pending_by_user ON orders (user_id) WHERE status = 'pending';
