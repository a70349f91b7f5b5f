//! Use cases. Applying a change runs inside the consumer's transaction (which
//! also holds the inbox record): the read model row and the owner's dirty mark
//! commit together. Publishing is in [`publish`].

pub mod publish;

use platform::messaging::HandlerError;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::CatalogPublisherError;
use crate::domain::{CategoryChange, OwnerChange, ProductChange, StockChange};
use crate::repo::{self, Applied, Publication};

/// Marks the owners a change touched: its owner, and the previous one when
/// the row moved between owners (so the old catalog drops it).
async fn mark(
    tx: &mut PgConnection,
    owner_id: Uuid,
    applied: Option<Applied>,
    what: &str,
) -> Result<bool, HandlerError> {
    let Some(applied) = applied else {
        tracing::debug!(what, "stale change ignored: the read model holds a newer one");
        return Ok(false);
    };
    repo::mark_dirty(tx, owner_id).await?;
    if let Some(previous) = applied.previous_owner.filter(|p| *p != owner_id) {
        repo::mark_dirty(tx, previous).await?;
    }
    Ok(true)
}

#[tracing::instrument(skip_all, fields(owner_id = %change.owner_id))]
pub async fn apply_owner_change(tx: &mut PgConnection, change: &OwnerChange) -> Result<bool, HandlerError> {
    let applied = repo::upsert_owner(tx, change).await?.then_some(Applied { previous_owner: None });
    mark(tx, change.owner_id, applied, "owner").await
}

#[tracing::instrument(skip_all, fields(owner_id = %change.owner_id, category_id = %change.category_id))]
pub async fn apply_category_change(tx: &mut PgConnection, change: &CategoryChange) -> Result<bool, HandlerError> {
    let applied = repo::upsert_category(tx, change).await?;
    mark(tx, change.owner_id, applied, "category").await
}

#[tracing::instrument(skip_all, fields(owner_id = %change.owner_id, product_id = %change.product_id))]
pub async fn apply_product_change(tx: &mut PgConnection, change: &ProductChange) -> Result<bool, HandlerError> {
    let applied = repo::upsert_product(tx, change).await?;
    mark(tx, change.owner_id, applied, "product").await
}

#[tracing::instrument(skip_all, fields(owner_id = %change.owner_id, product_id = %change.product_id))]
pub async fn apply_stock_change(tx: &mut PgConnection, change: &StockChange) -> Result<bool, HandlerError> {
    let applied = repo::upsert_stock(tx, change).await?;
    mark(tx, change.owner_id, applied, "stock").await
}

/// The owner's last published version.
pub async fn get_publication(db: &PgPool, owner_id: Uuid) -> Result<Publication, CatalogPublisherError> {
    let mut conn = db.acquire().await?;
    repo::fetch_publication(&mut conn, owner_id).await?.ok_or(CatalogPublisherError::NotFound)
}
