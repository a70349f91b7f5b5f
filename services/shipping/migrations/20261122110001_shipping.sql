-- Freight quotes: what a customer was offered before checkout. The cart
-- checks a quote (GET /shipping/quotes/{id}) and the order carries its id.
CREATE TABLE quotes (
    id              UUID        PRIMARY KEY,           -- UUIDv7
    origin_cep      CHAR(8)     NOT NULL,
    destination_cep CHAR(8)     NOT NULL,
    service         TEXT        NOT NULL CHECK (service IN ('PAC', 'SEDEX')),
    price_cents     BIGINT      NOT NULL CHECK (price_cents >= 0),
    currency        CHAR(3)     NOT NULL,
    delivery_days   INT         NOT NULL CHECK (delivery_days > 0),
    weight_grams    BIGINT      NOT NULL CHECK (weight_grams > 0),
    source          TEXT        NOT NULL CHECK (source IN ('carrier', 'fallback')),
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL CHECK (expires_at > created_at)
);

-- One shipment per confirmed order. `booking` rows are the booking worker's
-- queue: claimed with FOR UPDATE SKIP LOCKED and a lease, retried at
-- `next_attempt_at` while the carrier is down.
CREATE TABLE shipments (
    id                  UUID        PRIMARY KEY,       -- UUIDv7
    order_id            UUID        NOT NULL UNIQUE,   -- exactly one shipment per order
    customer_id         UUID        NOT NULL,
    quote_id            UUID,                          -- as the order carried it (may be unknown here)
    service             TEXT        NOT NULL CHECK (service IN ('PAC', 'SEDEX')),
    weight_grams        BIGINT      NOT NULL CHECK (weight_grams > 0),
    origin_cep          CHAR(8)     NOT NULL,
    destination_cep     CHAR(8)     NOT NULL,
    address             JSONB       NOT NULL,          -- AddressV1 as the order carried it
    status              TEXT        NOT NULL
                        CHECK (status IN ('booking', 'scheduled', 'cancelled', 'cancel_requested', 'rejected')),
    carrier_shipment_id TEXT,
    tracking_code       TEXT,
    estimated_delivery  DATE,
    attempts            INT         NOT NULL DEFAULT 0,
    next_attempt_at     TIMESTAMPTZ NOT NULL,
    leased_until        TIMESTAMPTZ,
    last_error          TEXT,
    -- The OrderConfirmedV1 envelope that caused the shipment, so the
    -- ShipmentScheduledV1 published later is caused by it.
    cause_message_id    UUID        NOT NULL,
    correlation_id      UUID        NOT NULL,
    traceparent         TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    scheduled_at        TIMESTAMPTZ,
    cancelled_at        TIMESTAMPTZ,
    CHECK (status <> 'scheduled' OR tracking_code IS NOT NULL)
);
CREATE INDEX shipments_due ON shipments (next_attempt_at) WHERE status = 'booking';
CREATE INDEX shipments_by_customer ON shipments (customer_id, id DESC);

-- Orders cancelled before their OrderConfirmedV1 was handled here (the two
-- queues race), so a late confirmation books nothing.
CREATE TABLE order_cancellations (
    order_id     UUID        PRIMARY KEY,
    reason       TEXT        NOT NULL,
    cancelled_at TIMESTAMPTZ NOT NULL
);
