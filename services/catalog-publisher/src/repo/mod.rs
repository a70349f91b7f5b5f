//! SQL for the read model, the dirty marks and the publications. Every
//! function takes a connection, so use cases decide the transaction.

use std::time::Duration;

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{
    CategoryChange, CategoryRecord, OwnerChange, OwnerRecord, ProductChange, ProductRecord, StockChange,
};

/// A change that was newer than the row it replaced (or created it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The row's owner before the change, when the row existed.
    pub previous_owner: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct UpsertRow {
    applied: bool,
    previous_owner: Option<Uuid>,
}

impl UpsertRow {
    fn into_applied(self) -> Option<Applied> {
        self.applied.then_some(Applied { previous_owner: self.previous_owner })
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Stores the owner's name unless the stored one is as new or newer.
pub async fn upsert_owner(conn: &mut PgConnection, c: &OwnerChange) -> sqlx::Result<bool> {
    let applied = sqlx::query(
        "INSERT INTO owners (owner_id, name, changed_at) VALUES ($1, $2, $3)
         ON CONFLICT (owner_id) DO UPDATE SET name = EXCLUDED.name, changed_at = EXCLUDED.changed_at
         WHERE owners.changed_at < EXCLUDED.changed_at",
    )
    .bind(c.owner_id)
    .bind(c.name.as_str())
    .bind(c.changed_at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(applied == 1)
}

/// Stores the category unless the stored one is as new or newer.
pub async fn upsert_category(conn: &mut PgConnection, c: &CategoryChange) -> sqlx::Result<Option<Applied>> {
    let row: UpsertRow = sqlx::query_as(
        "WITH previous AS (SELECT owner_id FROM categories WHERE category_id = $1),
              applied AS (
                INSERT INTO categories (category_id, owner_id, name, deleted, changed_at) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (category_id) DO UPDATE
                   SET owner_id = EXCLUDED.owner_id, name = EXCLUDED.name, deleted = EXCLUDED.deleted,
                       changed_at = EXCLUDED.changed_at
                 WHERE categories.changed_at < EXCLUDED.changed_at
                RETURNING 1)
         SELECT EXISTS (SELECT 1 FROM applied) AS applied, (SELECT owner_id FROM previous) AS previous_owner",
    )
    .bind(c.category_id)
    .bind(c.owner_id)
    .bind(&c.name)
    .bind(c.deleted)
    .bind(c.changed_at)
    .fetch_one(conn)
    .await?;
    Ok(row.into_applied())
}

/// Stores the product's whole state unless the stored one is as new or newer.
pub async fn upsert_product(conn: &mut PgConnection, c: &ProductChange) -> sqlx::Result<Option<Applied>> {
    let row: UpsertRow = sqlx::query_as(
        "WITH previous AS (SELECT owner_id FROM products WHERE product_id = $1),
              applied AS (
                INSERT INTO products (product_id, owner_id, sku, title, description, price_cents, currency,
                                      category_id, attributes, active, deleted, changed_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                ON CONFLICT (product_id) DO UPDATE
                   SET owner_id = EXCLUDED.owner_id, sku = EXCLUDED.sku, title = EXCLUDED.title,
                       description = EXCLUDED.description, price_cents = EXCLUDED.price_cents,
                       currency = EXCLUDED.currency, category_id = EXCLUDED.category_id,
                       attributes = EXCLUDED.attributes, active = EXCLUDED.active, deleted = EXCLUDED.deleted,
                       changed_at = EXCLUDED.changed_at
                 WHERE products.changed_at < EXCLUDED.changed_at
                RETURNING 1)
         SELECT EXISTS (SELECT 1 FROM applied) AS applied, (SELECT owner_id FROM previous) AS previous_owner",
    )
    .bind(c.product_id)
    .bind(c.owner_id)
    .bind(c.sku.as_str())
    .bind(c.title.as_str())
    .bind(&c.description)
    .bind(c.price_cents)
    .bind(c.currency.as_str())
    .bind(c.category_id)
    .bind(c.attributes.as_value())
    .bind(c.active)
    .bind(c.deleted)
    .bind(c.changed_at)
    .fetch_one(conn)
    .await?;
    Ok(row.into_applied())
}

/// Stores the product's available stock unless the stored one is as new or newer.
pub async fn upsert_stock(conn: &mut PgConnection, c: &StockChange) -> sqlx::Result<Option<Applied>> {
    let row: UpsertRow = sqlx::query_as(
        "WITH previous AS (SELECT owner_id FROM stock WHERE product_id = $1),
              applied AS (
                INSERT INTO stock (product_id, owner_id, available, changed_at) VALUES ($1, $2, $3, $4)
                ON CONFLICT (product_id) DO UPDATE
                   SET owner_id = EXCLUDED.owner_id, available = EXCLUDED.available, changed_at = EXCLUDED.changed_at
                 WHERE stock.changed_at < EXCLUDED.changed_at
                RETURNING 1)
         SELECT EXISTS (SELECT 1 FROM applied) AS applied, (SELECT owner_id FROM previous) AS previous_owner",
    )
    .bind(c.product_id)
    .bind(c.owner_id)
    .bind(c.available)
    .bind(c.changed_at)
    .fetch_one(conn)
    .await?;
    Ok(row.into_applied())
}

/// Marks the owner's catalog as changed (and gives it a publication row,
/// which the publisher locks; creating it never waits for that lock).
pub async fn mark_dirty(conn: &mut PgConnection, owner_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "WITH publication AS (INSERT INTO publications (owner_id) VALUES ($1) ON CONFLICT DO NOTHING)
         INSERT INTO dirty_owners (owner_id, first_dirty_at, last_change_at) VALUES ($1, clock_timestamp(), clock_timestamp())
         ON CONFLICT (owner_id) DO UPDATE
            SET last_change_at = clock_timestamp(), changes = dirty_owners.changes + 1",
    )
    .bind(owner_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A dirty owner claimed by one publisher until its transaction ends.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claim {
    pub owner_id: Uuid,
    /// Last published version, 0 when none.
    pub version: i64,
    pub sha256: Option<String>,
    /// Failed attempts in a row.
    pub failures: i32,
    /// The dirty mark's change count when claimed.
    pub changes: i64,
    /// When it was claimed (the database's clock).
    pub claimed_at: OffsetDateTime,
}

/// Claims the dirty owner waiting longest among those quiet for `window` or
/// dirty for `max_delay`, and not backing off after a failure. The lock is on
/// the publication row, skipped by other publishers, never taken by consumers.
pub async fn claim_due_owner(
    conn: &mut PgConnection,
    window: Duration,
    max_delay: Duration,
) -> sqlx::Result<Option<Claim>> {
    sqlx::query_as(
        "SELECT p.owner_id, p.version, p.sha256, p.failures, d.changes, clock_timestamp() AS claimed_at
           FROM dirty_owners d JOIN publications p ON p.owner_id = d.owner_id
          WHERE (d.last_change_at <= clock_timestamp() - $1::bigint * interval '1 microsecond'
                 OR d.first_dirty_at <= clock_timestamp() - $2::bigint * interval '1 microsecond')
            AND (p.retry_at IS NULL OR p.retry_at <= clock_timestamp())
          ORDER BY d.first_dirty_at
          LIMIT 1
          FOR UPDATE OF p SKIP LOCKED",
    )
    .bind(micros(window))
    .bind(micros(max_delay))
    .fetch_optional(conn)
    .await
}

/// Removes the dirty mark unless a change arrived after the claim. When one
/// did, the owner's dirty period restarts at the claim (what came before is
/// handled), so constant churn publishes every ten windows, not every poll.
pub async fn clear_dirty(conn: &mut PgConnection, claim: &Claim) -> sqlx::Result<bool> {
    let cleared = sqlx::query("DELETE FROM dirty_owners WHERE owner_id = $1 AND changes = $2")
        .bind(claim.owner_id)
        .bind(claim.changes)
        .execute(&mut *conn)
        .await?
        .rows_affected()
        == 1;
    if !cleared {
        sqlx::query("UPDATE dirty_owners SET first_dirty_at = GREATEST(first_dirty_at, $2) WHERE owner_id = $1")
            .bind(claim.owner_id)
            .bind(claim.claimed_at)
            .execute(conn)
            .await?;
    }
    Ok(cleared)
}

pub async fn fetch_owner(conn: &mut PgConnection, owner_id: Uuid) -> sqlx::Result<Option<OwnerRecord>> {
    let row: Option<(Uuid, String)> = sqlx::query_as("SELECT owner_id, name FROM owners WHERE owner_id = $1")
        .bind(owner_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|(id, name)| OwnerRecord { id, name }))
}

/// The owner's categories that are not deleted.
pub async fn fetch_categories(conn: &mut PgConnection, owner_id: Uuid) -> sqlx::Result<Vec<CategoryRecord>> {
    let rows: Vec<(Uuid, String, bool)> =
        sqlx::query_as("SELECT category_id, name, deleted FROM categories WHERE owner_id = $1 AND NOT deleted")
            .bind(owner_id)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().map(|(id, name, deleted)| CategoryRecord { id, name, deleted }).collect())
}

#[derive(sqlx::FromRow)]
struct ProductRow {
    product_id: Uuid,
    sku: String,
    title: String,
    description: String,
    price_cents: i64,
    currency: String,
    category_id: Option<Uuid>,
    attributes: serde_json::Value,
    active: bool,
    deleted: bool,
    available: Option<i64>,
}

/// The owner's active, not deleted products, with their stock when known.
pub async fn fetch_products(conn: &mut PgConnection, owner_id: Uuid) -> sqlx::Result<Vec<ProductRecord>> {
    let rows: Vec<ProductRow> = sqlx::query_as(
        "SELECT p.product_id, p.sku, p.title, p.description, p.price_cents, p.currency, p.category_id,
                p.attributes, p.active, p.deleted, s.available
           FROM products p LEFT JOIN stock s ON s.product_id = p.product_id
          WHERE p.owner_id = $1 AND p.active AND NOT p.deleted",
    )
    .bind(owner_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ProductRecord {
            id: r.product_id,
            sku: r.sku,
            title: r.title,
            description: r.description,
            price_cents: r.price_cents,
            currency: r.currency,
            category_id: r.category_id,
            attributes: r.attributes,
            active: r.active,
            deleted: r.deleted,
            available: r.available,
        })
        .collect())
}

/// Records a published version and makes it the owner's current one.
pub async fn record_version(
    conn: &mut PgConnection,
    owner_id: Uuid,
    version: i64,
    sha256: &str,
    published_at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO catalog_versions (owner_id, version, sha256, published_at) VALUES ($1, $2, $3, $4)")
        .bind(owner_id)
        .bind(version)
        .bind(sha256)
        .bind(published_at)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE publications
            SET version = $2, sha256 = $3, published_at = $4, failures = 0, retry_at = NULL, last_error = NULL
          WHERE owner_id = $1",
    )
    .bind(owner_id)
    .bind(version)
    .bind(sha256)
    .bind(published_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets past failures once an attempt succeeded without writing.
pub async fn reset_failures(conn: &mut PgConnection, owner_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE publications SET failures = 0, retry_at = NULL, last_error = NULL WHERE owner_id = $1 AND failures > 0",
    )
    .bind(owner_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts a failed attempt; the owner is not claimed again for `retry_in`.
pub async fn record_failure(
    conn: &mut PgConnection,
    owner_id: Uuid,
    retry_in: Duration,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE publications
            SET failures = failures + 1, retry_at = clock_timestamp() + $2::bigint * interval '1 microsecond',
                last_error = $3
          WHERE owner_id = $1",
    )
    .bind(owner_id)
    .bind(micros(retry_in))
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// The owner's last published version.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Publication {
    pub owner_id: Uuid,
    pub version: i64,
    pub sha256: String,
    pub published_at: OffsetDateTime,
}

pub async fn fetch_publication(conn: &mut PgConnection, owner_id: Uuid) -> sqlx::Result<Option<Publication>> {
    sqlx::query_as(
        "SELECT owner_id, version, sha256, published_at FROM publications
          WHERE owner_id = $1 AND version > 0 AND sha256 IS NOT NULL AND published_at IS NOT NULL",
    )
    .bind(owner_id)
    .fetch_optional(conn)
    .await
}

/// Dirty owners, and how long the oldest has waited (seconds).
pub async fn backlog(conn: &mut PgConnection) -> sqlx::Result<(i64, f64)> {
    sqlx::query_as(
        "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(first_dirty_at))::float8, 0)
           FROM dirty_owners",
    )
    .fetch_one(conn)
    .await
}
