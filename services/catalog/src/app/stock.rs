//! Stock administration (the product's seller and admins only).

use platform::http::Caller;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{CatalogCache, Changes, announce, authorize_object, now};
use crate::domain::{Hold, OnHand, StockLevel};
use crate::{CatalogError, events, repo};

/// The product's stock and the reservations holding part of it.
#[tracing::instrument(skip_all, fields(product_id = %product_id))]
pub async fn get_stock(
    db: &PgPool,
    caller: &Caller,
    product_id: Uuid,
) -> Result<(StockLevel, Vec<Hold>), CatalogError> {
    caller.require_user()?;
    let mut conn = db.acquire().await?;
    let level = authorized_level(&mut conn, caller, product_id).await?;
    let holds = repo::holds_of(&mut conn, product_id).await?;
    Ok((level, holds))
}

/// Sets the units on hand (never below those reserved); announces the new
/// level when it changed.
#[tracing::instrument(skip_all, fields(product_id = %product_id))]
pub async fn set_stock(
    db: &PgPool,
    cache: &CatalogCache,
    caller: &Caller,
    product_id: Uuid,
    on_hand: OnHand,
) -> Result<(StockLevel, Vec<Hold>), CatalogError> {
    caller.require_user()?;
    let mut tx = db.begin().await?;
    authorized_level(&mut tx, caller, product_id).await?;
    let locked = repo::lock_stock(&mut tx, &[product_id]).await?;
    let level = locked.into_iter().next().map(|a| a.level).ok_or(CatalogError::NotFound("product"))?;
    let mut changes = Changes::default();
    let level = match level.with_on_hand(on_hand, now())? {
        Some(changed) => {
            repo::update_stock(&mut tx, std::slice::from_ref(&changed)).await?;
            announce(&mut tx, None, events::stock_changed(&changed)).await?;
            changes.product(changed.owner_id, changed.product_id);
            tracing::info!(on_hand = changed.on_hand, reserved = changed.reserved, "stock set");
            changed
        }
        None => level,
    };
    let holds = repo::holds_of(&mut tx, product_id).await?;
    tx.commit().await?;
    cache.invalidate(&changes).await;
    Ok((level, holds))
}

/// The stock of a product that is not deleted, if the caller manages it.
async fn authorized_level(
    conn: &mut PgConnection,
    caller: &Caller,
    product_id: Uuid,
) -> Result<StockLevel, CatalogError> {
    let level = match repo::fetch_product(conn, product_id).await? {
        Some(_) => repo::fetch_stock(conn, product_id).await?,
        None => None,
    };
    let level = level.ok_or(CatalogError::NotFound("product"))?;
    authorize_object(caller, level.owner_id, "product")?;
    Ok(level)
}
