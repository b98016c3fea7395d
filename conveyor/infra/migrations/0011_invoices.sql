-- Invoices: a confirmed order gets one, numbered per calendar year (2026-000001, 2026-000002,
-- ...) with no gap and no duplicate. The number comes from the year's counter row, which the
-- issuing transaction locks and moves on together with the invoice's insert: a transaction
-- that rolls back gives its number back, and two issuers take turns on the row. An order has
-- at most one invoice (its id is the key), whoever issues it first (the projector, the
-- notifications processor or the edge).
CREATE TABLE IF NOT EXISTS invoice_counters (
    year        integer PRIMARY KEY CHECK (year BETWEEN 2000 AND 9999),
    last_number integer NOT NULL CHECK (last_number >= 0)
);

-- What the invoice says is kept with it when it is issued, so it reads the same later
-- however the catalog, the account or the seller's details change: the customer, the lines
-- (product name, quantity, unit price, subtotal, as JSON), the total and the seller.
CREATE TABLE IF NOT EXISTS invoices (
    order_id       uuid PRIMARY KEY REFERENCES orders (id),
    year           integer NOT NULL,
    number         integer NOT NULL CHECK (number >= 1),
    issued_at      timestamptz NOT NULL,
    user_id        uuid NOT NULL,
    customer_name  text,
    customer_email text,
    lines          jsonb NOT NULL,
    total          numeric(12, 2) NOT NULL CHECK (total >= 0),
    currency       char(3) NOT NULL,
    seller         jsonb NOT NULL,
    -- Set once the confirmed order is cancelled (its payment refunded); the number stays.
    refunded_at    timestamptz,
    refund_amount  numeric(12, 2) CHECK (refund_amount >= 0),
    UNIQUE (year, number),
    CHECK ((refunded_at IS NULL) = (refund_amount IS NULL))
);
