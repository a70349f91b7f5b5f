-- One row per checkout a customer started with an Idempotency-Key: the exact
-- body sent to orders, so a retry with the same key re-sends the same body
-- (orders then replays the same order) even if prices or the quote changed
-- in between, and the order it produced once orders answered.
CREATE TABLE checkout_attempts (
    customer_id      uuid        NOT NULL,
    idempotency_key  text        NOT NULL,
    -- the checkout request as parsed, to refuse the key with another request
    checkout_request jsonb       NOT NULL,
    -- the exact bytes posted to orders
    order_body       text        NOT NULL,
    total_cents      bigint      NOT NULL CHECK (total_cents >= 0),
    order_id         uuid,
    order_status     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, idempotency_key)
);

CREATE INDEX checkout_attempts_created_at ON checkout_attempts (created_at);
