//! Products (with the units available to sell) and full-text search.

use sqlx::{PgConnection, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use super::corrupt;
use crate::domain::{Attributes, Cents, Currency, Description, Product, ProductFilter, ProductView, Sku, Title};

#[derive(sqlx::FromRow)]
struct ProductRow {
    id: Uuid,
    owner_id: Uuid,
    sku: String,
    title: String,
    description: String,
    price_cents: i64,
    currency: String,
    category_id: Option<Uuid>,
    active: bool,
    attributes: serde_json::Value,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct ViewRow {
    #[sqlx(flatten)]
    product: ProductRow,
    available: i64,
}

/// The columns of a product row (`p` is `products`).
macro_rules! columns {
    () => {
        "p.id, p.owner_id, p.sku, p.title, p.description, p.price_cents, p.currency, p.category_id, p.active, \
         p.attributes, p.created_at, p.updated_at"
    };
}

const COLUMNS: &str = columns!();

/// Products with what is available of them (0 without a stock row).
const VIEW: &str = concat!(
    "SELECT ",
    columns!(),
    ", COALESCE(s.available, 0) AS available FROM products p LEFT JOIN stock s ON s.product_id = p.id"
);

impl TryFrom<ProductRow> for Product {
    type Error = sqlx::Error;

    fn try_from(r: ProductRow) -> sqlx::Result<Product> {
        Ok(Product {
            id: r.id,
            owner_id: r.owner_id,
            sku: Sku::parse(&r.sku).map_err(|e| corrupt(format!("sku: {e}")))?,
            title: Title::parse(&r.title).map_err(|e| corrupt(format!("title: {e}")))?,
            description: Description::parse(&r.description).map_err(|e| corrupt(format!("description: {e}")))?,
            price: Cents::parse(r.price_cents).map_err(|e| corrupt(format!("price: {e}")))?,
            currency: Currency::parse(&r.currency).map_err(|e| corrupt(format!("currency: {e}")))?,
            category_id: r.category_id,
            active: r.active,
            attributes: Attributes::parse(r.attributes).map_err(|e| corrupt(format!("attributes: {e}")))?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl TryFrom<ViewRow> for ProductView {
    type Error = sqlx::Error;

    fn try_from(r: ViewRow) -> sqlx::Result<ProductView> {
        Ok(ProductView { product: Product::try_from(r.product)?, available: r.available })
    }
}

/// Stores a new product and its empty stock row (a SKU the owner already
/// uses breaks `products_sku`).
#[tracing::instrument(skip_all, fields(product_id = %p.id, owner_id = %p.owner_id))]
pub async fn insert_product(conn: &mut PgConnection, p: &Product) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO products (id, owner_id, sku, title, description, price_cents, currency, category_id, active,
                               attributes, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(p.id)
    .bind(p.owner_id)
    .bind(p.sku.as_str())
    .bind(p.title.as_str())
    .bind(p.description.as_str())
    .bind(p.price.get())
    .bind(p.currency.code())
    .bind(p.category_id)
    .bind(p.active)
    .bind(p.attributes.to_json())
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO stock (product_id, updated_at) VALUES ($1, $2)")
        .bind(p.id)
        .bind(p.created_at)
        .execute(conn)
        .await?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(product_id = %p.id))]
pub async fn update_product(conn: &mut PgConnection, p: &Product) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE products SET sku = $2, title = $3, description = $4, price_cents = $5, currency = $6,
                             category_id = $7, active = $8, attributes = $9, updated_at = $10
          WHERE id = $1",
    )
    .bind(p.id)
    .bind(p.sku.as_str())
    .bind(p.title.as_str())
    .bind(p.description.as_str())
    .bind(p.price.get())
    .bind(p.currency.code())
    .bind(p.category_id)
    .bind(p.active)
    .bind(p.attributes.to_json())
    .bind(p.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A product that is not deleted, active or not, with what is available.
#[tracing::instrument(skip_all, fields(product_id = %id))]
pub async fn fetch_product(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ProductView>> {
    let row: Option<ViewRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{VIEW} WHERE p.id = $1 AND p.deleted_at IS NULL")))
            .bind(id)
            .fetch_optional(conn)
            .await?;
    row.map(ProductView::try_from).transpose()
}

/// A product that is not deleted, locked until the transaction ends.
pub async fn lock_product(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Product>> {
    let row: Option<ProductRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM products p WHERE p.id = $1 AND p.deleted_at IS NULL FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(Product::try_from).transpose()
}

/// Deletes a product for everyone. Its row stays, so the reservations that
/// hold its stock can still be released or committed, and its SKU is free.
#[tracing::instrument(skip_all, fields(product_id = %id))]
pub async fn soft_delete_product(conn: &mut PgConnection, id: Uuid, now: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query("UPDATE products SET deleted_at = $2, updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes every product out of `category_id`; returns the products that are
/// not deleted, as they are now.
#[tracing::instrument(skip_all, fields(category_id = %category_id))]
pub async fn uncategorize_products(
    conn: &mut PgConnection,
    category_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<Product>> {
    sqlx::query("UPDATE products SET category_id = NULL WHERE category_id = $1 AND deleted_at IS NOT NULL")
        .bind(category_id)
        .execute(&mut *conn)
        .await?;
    let rows: Vec<ProductRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE products p SET category_id = NULL, updated_at = $2 WHERE p.category_id = $1
         RETURNING {COLUMNS}"
    )))
    .bind(category_id)
    .bind(now)
    .fetch_all(conn)
    .await?;
    let mut products: Vec<Product> = rows.into_iter().map(Product::try_from).collect::<sqlx::Result<_>>()?;
    products.sort_by_key(|p| p.id);
    Ok(products)
}

/// Active products matching `filter`, newest first, after `cursor` (a
/// product id).
#[tracing::instrument(skip_all)]
pub async fn list_products(
    conn: &mut PgConnection,
    filter: &ProductFilter,
    cursor: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<ProductView>> {
    // Only the conditions asked for, so the planner sees (and indexes) each.
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(VIEW);
    q.push(" WHERE p.deleted_at IS NULL AND p.active");
    if let Some(owner) = filter.owner_id {
        q.push(" AND p.owner_id = ").push_bind(owner);
    }
    if let Some(category) = filter.category_id {
        q.push(" AND p.category_id = ").push_bind(category);
    }
    if let Some(text) = &filter.text {
        q.push(" AND p.search @@ websearch_to_tsquery('simple', ").push_bind(text.as_str().to_string()).push(")");
    }
    if let Some(cursor) = cursor {
        q.push(" AND p.id < ").push_bind(cursor);
    }
    q.push(" ORDER BY p.id DESC LIMIT ").push_bind(limit);
    let rows: Vec<ViewRow> = q.build_query_as().fetch_all(conn).await?;
    rows.into_iter().map(ProductView::try_from).collect()
}

/// Every active product of an owner, for its catalog document.
#[tracing::instrument(skip_all, fields(owner_id = %owner_id))]
pub async fn list_catalog_products(conn: &mut PgConnection, owner_id: Uuid) -> sqlx::Result<Vec<ProductView>> {
    let rows: Vec<ViewRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{VIEW} WHERE p.owner_id = $1 AND p.deleted_at IS NULL AND p.active ORDER BY p.sku, p.id"
    )))
    .bind(owner_id)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(ProductView::try_from).collect()
}
