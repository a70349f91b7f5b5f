-- The platform's tables, present in every service's database.

-- Transactional outbox: a row is written in the same transaction as the state
-- change it announces; the relay publishes it and marks it sent.
CREATE TABLE outbox (
    seq          BIGSERIAL PRIMARY KEY,
    message_id   UUID        NOT NULL UNIQUE,
    exchange     TEXT        NOT NULL,
    routing_key  TEXT        NOT NULL,
    message_type TEXT        NOT NULL,
    envelope     JSONB       NOT NULL,
    traceparent  TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ,
    attempts     INT         NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Wakes the relay as soon as a transaction that wrote outbox rows commits.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Inbox: the id of every message a consumer has applied, recorded in the same
-- transaction as its effect, so a redelivery changes nothing.
CREATE TABLE inbox (
    consumer     TEXT        NOT NULL,
    message_id   UUID        NOT NULL,
    message_type TEXT        NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX inbox_processed_at ON inbox (processed_at);

-- Idempotency-Key: the first response to an unsafe request, replayed for the
-- same key and body (Stripe's semantics).
CREATE TABLE idempotency_keys (
    scope           TEXT        NOT NULL,
    key             TEXT        NOT NULL,
    request_hash    BYTEA       NOT NULL,
    locked_until    TIMESTAMPTZ,
    response_status SMALLINT,
    response_headers JSONB,
    response_body   BYTEA,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);
