//! Owners and categories.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::corrupt;
use crate::domain::{Category, CategoryName, Owner, OwnerName};

#[derive(sqlx::FromRow)]
struct OwnerRow {
    id: Uuid,
    name: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<OwnerRow> for Owner {
    type Error = sqlx::Error;

    fn try_from(r: OwnerRow) -> sqlx::Result<Owner> {
        let name = OwnerName::parse(&r.name).map_err(|e| corrupt(format!("owner name: {e}")))?;
        Ok(Owner { id: r.id, name, created_at: r.created_at, updated_at: r.updated_at })
    }
}

/// Stores a new owner; `false` when one with its id already exists.
#[tracing::instrument(skip_all, fields(owner_id = %owner.id))]
pub async fn insert_owner(conn: &mut PgConnection, owner: &Owner) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO owners (id, name, created_at, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
    )
    .bind(owner.id)
    .bind(owner.name.as_str())
    .bind(owner.created_at)
    .bind(owner.updated_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[tracing::instrument(skip_all, fields(owner_id = %owner.id))]
pub async fn update_owner(conn: &mut PgConnection, owner: &Owner) -> sqlx::Result<()> {
    sqlx::query("UPDATE owners SET name = $2, updated_at = $3 WHERE id = $1")
        .bind(owner.id)
        .bind(owner.name.as_str())
        .bind(owner.updated_at)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn fetch_owner(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Owner>> {
    let row: Option<OwnerRow> = sqlx::query_as("SELECT id, name, created_at, updated_at FROM owners WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(Owner::try_from).transpose()
}

/// The owner, locked until the transaction ends.
pub async fn lock_owner(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Owner>> {
    let row: Option<OwnerRow> =
        sqlx::query_as("SELECT id, name, created_at, updated_at FROM owners WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    row.map(Owner::try_from).transpose()
}

#[derive(sqlx::FromRow)]
struct CategoryRow {
    id: Uuid,
    owner_id: Uuid,
    name: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<CategoryRow> for Category {
    type Error = sqlx::Error;

    fn try_from(r: CategoryRow) -> sqlx::Result<Category> {
        let name = CategoryName::parse(&r.name).map_err(|e| corrupt(format!("category name: {e}")))?;
        Ok(Category { id: r.id, owner_id: r.owner_id, name, created_at: r.created_at, updated_at: r.updated_at })
    }
}

/// Stores a new category (a name taken by the owner breaks `categories_name`).
#[tracing::instrument(skip_all, fields(category_id = %c.id, owner_id = %c.owner_id))]
pub async fn insert_category(conn: &mut PgConnection, c: &Category) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO categories (id, owner_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(c.id)
        .bind(c.owner_id)
        .bind(c.name.as_str())
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(conn)
        .await?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(category_id = %c.id))]
pub async fn update_category(conn: &mut PgConnection, c: &Category) -> sqlx::Result<()> {
    sqlx::query("UPDATE categories SET name = $2, updated_at = $3 WHERE id = $1")
        .bind(c.id)
        .bind(c.name.as_str())
        .bind(c.updated_at)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn fetch_category(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Category>> {
    let row: Option<CategoryRow> =
        sqlx::query_as("SELECT id, owner_id, name, created_at, updated_at FROM categories WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    row.map(Category::try_from).transpose()
}

/// The category, locked until the transaction ends: `exclusive` for a
/// change to it, otherwise only against its deletion (a product is being
/// put in it).
pub async fn lock_category(conn: &mut PgConnection, id: Uuid, exclusive: bool) -> sqlx::Result<Option<Category>> {
    let sql = if exclusive {
        "SELECT id, owner_id, name, created_at, updated_at FROM categories WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT id, owner_id, name, created_at, updated_at FROM categories WHERE id = $1 FOR KEY SHARE"
    };
    let row: Option<CategoryRow> = sqlx::query_as(sql).bind(id).fetch_optional(conn).await?;
    row.map(Category::try_from).transpose()
}

/// An owner's categories.
#[tracing::instrument(skip_all, fields(owner_id = %owner_id))]
pub async fn list_categories(conn: &mut PgConnection, owner_id: Uuid) -> sqlx::Result<Vec<Category>> {
    let rows: Vec<CategoryRow> = sqlx::query_as(
        "SELECT id, owner_id, name, created_at, updated_at FROM categories WHERE owner_id = $1 ORDER BY name, id",
    )
    .bind(owner_id)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Category::try_from).collect()
}

#[tracing::instrument(skip_all, fields(category_id = %id))]
pub async fn delete_category(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM categories WHERE id = $1").bind(id).execute(conn).await?;
    Ok(())
}
