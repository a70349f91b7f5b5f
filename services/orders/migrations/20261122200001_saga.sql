-- The order saga: what the order needs for checkout, and where its saga
-- stands. Orders placed before the saga have no checkout and are left as
-- they are (their saga step stays NULL: nothing is awaited).
ALTER TABLE orders
    ADD COLUMN freight_cents          BIGINT      NOT NULL DEFAULT 0 CHECK (freight_cents >= 0),
    ADD COLUMN contact_email          TEXT,
    ADD COLUMN shipping               JSONB,      -- {quote_id, freight_cents, address{...}}
    ADD COLUMN payment_method         JSONB,      -- {"type":"card","token":...} | {"type":"pix"}
    ADD COLUMN saga_step              TEXT        CHECK (saga_step IN ('reserving_stock', 'charging', 'awaiting_pix', 'done')),
    ADD COLUMN step_deadline          TIMESTAMPTZ,
    ADD COLUMN cancel_reason          TEXT,
    ADD COLUMN reservation_expires_at TIMESTAMPTZ,
    ADD COLUMN payment_id             UUID,
    ADD COLUMN tracking_code          TEXT,
    -- The correlation id of every message of this order's saga.
    ADD COLUMN correlation_id         UUID;

-- The timeout sweeper looks only at orders that wait for something.
CREATE INDEX orders_saga_deadline ON orders (step_deadline) WHERE step_deadline IS NOT NULL;

ALTER TABLE order_lines ADD COLUMN product_id UUID;

-- What happened to an order, in order: GET /orders/{id}/timeline.
CREATE TABLE order_timeline (
    order_id UUID        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    seq      BIGINT      GENERATED ALWAYS AS IDENTITY,
    step     TEXT        NOT NULL,
    outcome  TEXT        NOT NULL,
    at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (order_id, seq)
);
