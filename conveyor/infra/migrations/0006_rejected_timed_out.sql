-- An order whose deadline passed before its stock and payment were settled is rejected with
-- the reason timed_out.
ALTER TABLE orders DROP CONSTRAINT orders_reason_check;
ALTER TABLE orders ADD CONSTRAINT orders_reason_check
    CHECK (reason IN ('out_of_stock', 'payment_declined', 'payment_unavailable', 'timed_out'));
