-- Sellers. The id is the seller's user id (identity's), so a seller's own
-- catalog lives under /owners/<their id>.
CREATE TABLE owners (
    id         UUID        PRIMARY KEY,
    name       TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE categories (
    id         UUID        PRIMARY KEY,          -- UUIDv7
    owner_id   UUID        NOT NULL REFERENCES owners (id),
    name       TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    -- Target of the products' (owner_id, category_id) key: a product's
    -- category belongs to the product's owner.
    UNIQUE (owner_id, id)
);
-- "Books" and "books" are one category.
CREATE UNIQUE INDEX categories_name ON categories (owner_id, lower(name));

CREATE TABLE products (
    id          UUID        PRIMARY KEY,          -- UUIDv7: sorts by creation
    owner_id    UUID        NOT NULL REFERENCES owners (id),
    sku         TEXT        NOT NULL CHECK (length(sku) BETWEEN 1 AND 64),
    title       TEXT        NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description TEXT        NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
    price_cents BIGINT      NOT NULL CHECK (price_cents >= 0),
    currency    TEXT        NOT NULL CHECK (currency IN ('BRL', 'USD', 'EUR')),
    category_id UUID,
    active      BOOLEAN     NOT NULL DEFAULT true,
    attributes  JSONB       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    search      TSVECTOR    GENERATED ALWAYS AS (to_tsvector('simple', title || ' ' || description)) STORED,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    -- Deleted products stay (soft delete) so the reservations that hold
    -- their stock can still be released or committed; they are invisible
    -- everywhere else and their SKU may be used again.
    deleted_at  TIMESTAMPTZ,
    FOREIGN KEY (owner_id, category_id) REFERENCES categories (owner_id, id)
);
CREATE UNIQUE INDEX products_sku ON products (owner_id, sku) WHERE deleted_at IS NULL;
CREATE INDEX products_by_owner ON products (owner_id, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX products_by_category ON products (category_id) WHERE category_id IS NOT NULL;
CREATE INDEX products_search ON products USING GIN (search);

-- One row per product, created with it. `available` is never negative.
CREATE TABLE stock (
    product_id UUID        PRIMARY KEY REFERENCES products (id),
    on_hand    BIGINT      NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reserved   BIGINT      NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    available  BIGINT      GENERATED ALWAYS AS (on_hand - reserved) STORED,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT stock_available_not_negative CHECK (on_hand - reserved >= 0)
);

-- The outcome of the first reserve command of each order (idempotent per
-- order), and what became of it.
CREATE TABLE reservations (
    order_id       UUID        PRIMARY KEY,
    status         TEXT        NOT NULL
                   CHECK (status IN ('reserved', 'rejected', 'released', 'committed', 'expired')),
    -- Why it was rejected (out_of_stock, unknown_product) or released (the
    -- command's reason).
    reason         TEXT,
    expires_at     TIMESTAMPTZ,
    -- The saga's correlation id, kept for the messages the expiry sends.
    correlation_id UUID,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    CHECK ((status = 'rejected') = (expires_at IS NULL))
);
CREATE INDEX reservations_due ON reservations (expires_at) WHERE status = 'reserved';

-- The lines asked for, merged per product. A rejected line that could not be
-- served keeps the quantity that was available (`short_available`). No key to
-- products: a rejection may name a product that does not exist.
CREATE TABLE reservation_lines (
    order_id        UUID   NOT NULL REFERENCES reservations (order_id) ON DELETE CASCADE,
    product_id      UUID   NOT NULL,
    quantity        BIGINT NOT NULL CHECK (quantity > 0),
    short_available BIGINT CHECK (short_available >= 0),
    PRIMARY KEY (order_id, product_id)
);
CREATE INDEX reservation_lines_by_product ON reservation_lines (product_id);
