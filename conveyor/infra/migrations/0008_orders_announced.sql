-- The edge records an order before it hands PlaceOrder to Kafka, with no database connection
-- held during the send, and marks it announced once Kafka has it (the projector marks any
-- order whose PlaceOrder it sees). An edge that dies in between leaves an unannounced row,
-- which the edge withdraws once it is older than any send can take; this index keeps
-- finding them cheap. Rows from before are all announced.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS announced boolean NOT NULL DEFAULT true;
CREATE INDEX IF NOT EXISTS orders_unannounced ON orders (created_at) WHERE NOT announced;
