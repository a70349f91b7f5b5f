-- One payment per order. The row is the work queue of the PSP worker too:
-- rows in `requested`, `checking`, `voiding` or `refunding` whose
-- `next_attempt_at` has come and whose lease (`locked_until`) is free are
-- claimed with FOR UPDATE SKIP LOCKED, so replicas share the work and a
-- process that dies mid-call only delays the row until its lease expires.
CREATE TABLE payments (
    id                    UUID        PRIMARY KEY,
    order_id              UUID        NOT NULL UNIQUE,
    customer_id           UUID        NOT NULL,
    amount_cents          BIGINT      NOT NULL CHECK (amount_cents > 0),
    currency              CHAR(3)     NOT NULL,
    method                TEXT        NOT NULL CHECK (method IN ('card', 'pix')),
    -- The provider's card token (tok_...); card data never reaches feira.
    card_token            TEXT,
    status                TEXT        NOT NULL CHECK (status IN (
                              'requested', 'checking', 'pending', 'captured', 'failed',
                              'refunding', 'refunded', 'refund_failed', 'voiding', 'voided')),
    -- Sent as Idempotency-Key on every charge attempt: the provider answers
    -- a repeated attempt with the charge it already made.
    idempotency_key       TEXT        NOT NULL UNIQUE,
    provider_charge_id    TEXT,
    pix_code              TEXT,
    pix_expires_at        TIMESTAMPTZ,
    failure_reason        TEXT,
    failure_detail        TEXT,
    refunded_cents        BIGINT      NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0),
    provider_refund_id    TEXT,
    -- Whether finishing a refund announces PaymentRefundedV1 (false when a
    -- late PIX payment of a voided order is given back on our own account).
    announce_refund       BOOLEAN     NOT NULL DEFAULT true,
    -- The commands the later replies are caused by.
    charge_message_id     UUID        NOT NULL,
    charge_correlation_id UUID        NOT NULL,
    refund_message_id     UUID,
    refund_correlation_id UUID,
    -- Worker bookkeeping.
    attempts              INT         NOT NULL DEFAULT 0,
    next_attempt_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    locked_until          TIMESTAMPTZ,
    lease_id              UUID,
    last_error            TEXT,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    captured_at           TIMESTAMPTZ
);
CREATE INDEX payments_by_customer ON payments (customer_id, id DESC);
CREATE INDEX payments_due ON payments (next_attempt_at)
    WHERE status IN ('requested', 'checking', 'voiding', 'refunding');

-- Orders whose refund (compensation) arrived before any charge: a later
-- ChargePaymentV1 for them is refused, so a late command never charges a
-- cancelled order.
CREATE TABLE charge_tombstones (
    order_id   UUID        PRIMARY KEY,
    reason     TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
