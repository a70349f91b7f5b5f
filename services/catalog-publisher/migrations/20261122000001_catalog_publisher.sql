-- The publisher's read model of the catalog, fed by the catalog's change
-- events. Every row keeps the `changed_at` of the event that wrote it: an
-- event is applied only when it is newer, so events arriving late or twice
-- never move a row back. Deleted categories and products stay as tombstones
-- for the same reason.

CREATE TABLE owners (
    owner_id   UUID        PRIMARY KEY,
    name       TEXT        NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE categories (
    category_id UUID        PRIMARY KEY,
    owner_id    UUID        NOT NULL,
    name        TEXT        NOT NULL,
    deleted     BOOLEAN     NOT NULL,
    changed_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX categories_by_owner ON categories (owner_id);

CREATE TABLE products (
    product_id  UUID        PRIMARY KEY,
    owner_id    UUID        NOT NULL,
    sku         TEXT        NOT NULL,
    title       TEXT        NOT NULL,
    description TEXT        NOT NULL,
    price_cents BIGINT      NOT NULL CHECK (price_cents >= 0),
    currency    TEXT        NOT NULL,
    category_id UUID,
    attributes  JSONB       NOT NULL,
    active      BOOLEAN     NOT NULL,
    deleted     BOOLEAN     NOT NULL,
    changed_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX products_by_owner ON products (owner_id);

-- Kept apart from products: stock events may arrive before their product's.
CREATE TABLE stock (
    product_id UUID        PRIMARY KEY,
    owner_id   UUID        NOT NULL,
    available  BIGINT      NOT NULL CHECK (available >= 0),
    changed_at TIMESTAMPTZ NOT NULL
);

-- Owners whose catalog changed since it was last built. Written in the
-- consumer's transaction with the change; `changes` counts the changes, so
-- the publisher clears the mark only when nothing arrived while it worked.
CREATE TABLE dirty_owners (
    owner_id       UUID        PRIMARY KEY,
    first_dirty_at TIMESTAMPTZ NOT NULL,
    last_change_at TIMESTAMPTZ NOT NULL,
    changes        BIGINT      NOT NULL DEFAULT 1
);
CREATE INDEX dirty_owners_by_age ON dirty_owners (first_dirty_at);

-- One row per owner ever marked dirty: the last published version (0: none)
-- and the publisher's retry state. A publisher locks this row (FOR UPDATE
-- SKIP LOCKED) for the whole build-write-record of the owner, so replicas
-- never publish the same owner at once; consumers never lock it.
CREATE TABLE publications (
    owner_id     UUID        PRIMARY KEY,
    version      BIGINT      NOT NULL DEFAULT 0 CHECK (version >= 0),
    sha256       TEXT,
    published_at TIMESTAMPTZ,
    failures     INT         NOT NULL DEFAULT 0,
    retry_at     TIMESTAMPTZ,
    last_error   TEXT
);

-- Every published version, as announced by CatalogPublishedV1.
CREATE TABLE catalog_versions (
    owner_id     UUID        NOT NULL,
    version      BIGINT      NOT NULL CHECK (version > 0),
    sha256       TEXT        NOT NULL,
    published_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner_id, version)
);
