-- Who receives an order's e-mails, learned from OrderPlacedV1 (the only
-- event that carries the contact e-mail before the order is confirmed).
-- `email` is NULL when the order was placed without one.
CREATE TABLE recipients (
    order_id    UUID        PRIMARY KEY,
    customer_id UUID        NOT NULL,
    email       TEXT,
    recorded_at TIMESTAMPTZ NOT NULL
);

-- One row per e-mail, written in the consumer's transaction (rendered
-- already) and sent afterwards by the delivery worker. The source message id
-- is unique: a redelivered event never makes a second e-mail.
CREATE TABLE emails (
    id                UUID        PRIMARY KEY,
    kind              TEXT        NOT NULL
                      CHECK (kind IN ('invoice_issued', 'order_cancelled', 'shipment_scheduled')),
    order_id          UUID        NOT NULL,
    customer_id       UUID        NOT NULL,
    to_address        TEXT,                      -- NULL when skipped for want of an address
    subject           TEXT        NOT NULL,
    body              TEXT        NOT NULL,
    status            TEXT        NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    source_message_id UUID        NOT NULL UNIQUE,
    attempts          INT         NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at   TIMESTAMPTZ NOT NULL,
    leased_until      TIMESTAMPTZ,               -- a worker is sending it until then
    last_error        TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    sent_at           TIMESTAMPTZ,
    CHECK (status <> 'pending' OR to_address IS NOT NULL),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);
CREATE INDEX emails_due ON emails (next_attempt_at) WHERE status = 'pending';
CREATE INDEX emails_by_order ON emails (order_id, id DESC);
CREATE INDEX emails_by_customer ON emails (customer_id, id DESC);
