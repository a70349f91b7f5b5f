-- Numbering: one row per series, locked while a number is taken, so numbers
-- are gapless (a rolled-back transaction gives its number back).
CREATE TABLE invoice_series (
    series      TEXT   PRIMARY KEY,
    next_number BIGINT NOT NULL DEFAULT 1 CHECK (next_number > 0)
);
INSERT INTO invoice_series (series) VALUES ('1');

CREATE TABLE invoices (
    id          UUID        PRIMARY KEY,
    order_id    UUID        NOT NULL UNIQUE,      -- exactly one invoice per order
    customer_id UUID        NOT NULL,
    series      TEXT        NOT NULL REFERENCES invoice_series (series),
    number      BIGINT      NOT NULL,
    currency    CHAR(3)     NOT NULL,
    total_cents BIGINT      NOT NULL CHECK (total_cents >= 0),
    issued_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (series, number)
);
CREATE INDEX invoices_by_customer ON invoices (customer_id, id DESC);

CREATE TABLE invoice_lines (
    invoice_id       UUID   NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    line_no          INT    NOT NULL,
    sku              TEXT   NOT NULL,
    quantity         INT    NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    line_total_cents BIGINT NOT NULL CHECK (line_total_cents >= 0),
    PRIMARY KEY (invoice_id, line_no)
);
