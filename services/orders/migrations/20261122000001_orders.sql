CREATE TABLE orders (
    id              UUID        PRIMARY KEY,          -- UUIDv7: sorts by creation
    customer_id     UUID        NOT NULL,
    status          TEXT        NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
    currency        CHAR(3)     NOT NULL,
    total_cents     BIGINT      NOT NULL CHECK (total_cents >= 0),
    idempotency_key TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX orders_by_customer ON orders (customer_id, id DESC);
-- A retried checkout with the same key finds its order even if the process
-- died before the Idempotency-Key response was stored.
CREATE UNIQUE INDEX orders_idempotency ON orders (customer_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE order_lines (
    order_id         UUID    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no          INT     NOT NULL,
    sku              TEXT    NOT NULL,
    quantity         INT     NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT  NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, line_no)
);
