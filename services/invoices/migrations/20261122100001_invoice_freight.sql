-- Invoices are drawn from OrderConfirmedV1, whose total is the lines plus
-- the freight: the freight is kept so the lines and the total reconcile.
ALTER TABLE invoices ADD COLUMN freight_cents BIGINT NOT NULL DEFAULT 0 CHECK (freight_cents >= 0);
