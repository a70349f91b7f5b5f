-- psp-sim: the simulated provider's ledger.

CREATE TABLE charges (
    id             text PRIMARY KEY,
    status         text NOT NULL CHECK (status IN ('succeeded', 'pending', 'failed')),
    amount_cents   bigint NOT NULL CHECK (amount_cents > 0),
    currency       text NOT NULL,
    order_ref      text NOT NULL,
    source_type    text NOT NULL CHECK (source_type IN ('card', 'pix')),
    card_token     text,
    failure_code   text,
    pix_code       text,
    pix_expires_at timestamptz,
    notify_url     text,
    refunded_cents bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL,
    CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents)
);

CREATE INDEX charges_by_order_ref ON charges (order_ref, created_at, id);

CREATE TABLE refunds (
    id           text PRIMARY KEY,
    charge_id    text NOT NULL REFERENCES charges (id),
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    status       text NOT NULL,
    created_at   timestamptz NOT NULL
);

CREATE INDEX refunds_by_charge ON refunds (charge_id, created_at);

-- One row per Idempotency-Key and endpoint: the primary key is what makes
-- concurrent requests with one key produce one charge. The row is claimed
-- and answered in the same transaction as the charge or refund it records.
-- (The platform's own idempotency_keys table, from its migrations, has
-- other semantics: 409 while running, 422 on another body. Not used here.)
CREATE TABLE psp_idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    status_code  smallint,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

-- Every attempt to deliver a PIX callback, for tests and operators.
CREATE TABLE pix_deliveries (
    id           bigserial PRIMARY KEY,
    charge_id    text NOT NULL REFERENCES charges (id),
    attempt      integer NOT NULL,
    url          text NOT NULL,
    status_code  integer,
    error        text,
    attempted_at timestamptz NOT NULL
);

CREATE INDEX pix_deliveries_by_charge ON pix_deliveries (charge_id, id);
