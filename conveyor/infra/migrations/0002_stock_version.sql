-- The stock read model keeps the version of the figure it shows, so a redelivered or
-- reordered StockChanged never replaces a newer figure with an older one.
ALTER TABLE stock ADD COLUMN version bigint NOT NULL DEFAULT 0 CHECK (version >= 0);
