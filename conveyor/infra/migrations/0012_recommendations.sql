-- "Customers also bought": the recommendations processor's read model, one row per product
-- with the products bought together with it, best first, as
-- [{"product_id": "...", "score": 1.5}, ...]. At most CONVEYOR_RECOMMENDATION_TOP_N items:
-- the processor keeps no more per product, so a row's size never grows with history.
-- The scores are as of `as_of`, the latest co-purchase counted (they decay from there).
-- No foreign keys: a product retired from the catalog keeps its row, and the edge leaves
-- retired products out when it answers.
CREATE TABLE IF NOT EXISTS product_recommendations (
    product_id uuid PRIMARY KEY,
    items      jsonb NOT NULL CHECK (jsonb_typeof(items) = 'array'),
    as_of      timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
