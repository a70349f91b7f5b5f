//! Owner profiles, categories and the owner's catalog document.

use platform::http::Caller;
use sqlx::PgPool;
use uuid::Uuid;

use super::{CatalogCache, Changes, announce, authorize_object, authorize_owner, now};
use crate::domain::{Category, CategoryName, Owner, OwnerCatalog, OwnerName};
use crate::{CatalogError, events, repo};

/// Creates the owner profile, or renames it. `true` when it was created.
#[tracing::instrument(skip_all, fields(owner_id = %id))]
pub async fn put_owner(
    db: &PgPool,
    cache: &CatalogCache,
    caller: &Caller,
    id: Uuid,
    name: OwnerName,
) -> Result<(Owner, bool), CatalogError> {
    authorize_owner(caller, id)?;
    let now = now();
    let mut tx = db.begin().await?;
    let existing = match repo::lock_owner(&mut tx, id).await? {
        Some(o) => Some(o),
        None => {
            let owner = Owner::new(id, name.clone(), now);
            if repo::insert_owner(&mut tx, &owner).await? {
                announce(&mut tx, None, events::owner_changed(&owner)).await?;
                tx.commit().await?;
                cache.invalidate(Changes::default().owner(id)).await;
                tracing::info!("owner created");
                return Ok((owner, true));
            }
            // Created by a concurrent request since: rename it.
            repo::lock_owner(&mut tx, id).await?
        }
    };
    let existing = existing.ok_or(CatalogError::NotFound("owner"))?;
    let Some(renamed) = existing.renamed(name, now) else {
        tx.rollback().await?;
        return Ok((existing, false));
    };
    repo::update_owner(&mut tx, &renamed).await?;
    announce(&mut tx, None, events::owner_changed(&renamed)).await?;
    tx.commit().await?;
    cache.invalidate(Changes::default().owner(id)).await;
    tracing::info!("owner renamed");
    Ok((renamed, false))
}

/// An owner's public profile.
pub async fn get_owner(db: &PgPool, id: Uuid) -> Result<Owner, CatalogError> {
    let mut conn = db.acquire().await?;
    repo::fetch_owner(&mut conn, id).await?.ok_or(CatalogError::NotFound("owner"))
}

/// The owner's public catalog document, read from one snapshot (cached).
#[tracing::instrument(skip_all, fields(owner_id = %owner_id))]
pub async fn owner_catalog(db: &PgPool, cache: &CatalogCache, owner_id: Uuid) -> Result<OwnerCatalog, CatalogError> {
    cache
        .owner_catalog(owner_id, async {
            let mut tx = db.begin().await?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
            let owner = repo::fetch_owner(&mut tx, owner_id).await?.ok_or(CatalogError::NotFound("owner"))?;
            let categories = repo::list_categories(&mut tx, owner_id).await?;
            let products = repo::list_catalog_products(&mut tx, owner_id).await?;
            tx.commit().await?;
            Ok(OwnerCatalog::assemble(owner, categories, products))
        })
        .await
}

/// A new category of `owner_id` (whose profile must exist).
#[tracing::instrument(skip_all, fields(owner_id = %owner_id))]
pub async fn create_category(
    db: &PgPool,
    cache: &CatalogCache,
    caller: &Caller,
    owner_id: Uuid,
    name: CategoryName,
) -> Result<Category, CatalogError> {
    authorize_owner(caller, owner_id)?;
    let category = Category::new(owner_id, name, now());
    let mut tx = db.begin().await?;
    if repo::fetch_owner(&mut tx, owner_id).await?.is_none() {
        return Err(CatalogError::NoOwner);
    }
    repo::insert_category(&mut tx, &category).await.map_err(|e| name_taken(e, &category))?;
    announce(&mut tx, None, events::category_changed(&category, false)).await?;
    tx.commit().await?;
    cache.invalidate(Changes::default().owner(owner_id)).await;
    tracing::info!(category_id = %category.id, "category created");
    Ok(category)
}

fn name_taken(e: sqlx::Error, c: &Category) -> CatalogError {
    if repo::violates(&e, "categories_name") {
        return CatalogError::Conflict(format!("the owner already has a category named {:?}", c.name.as_str()));
    }
    e.into()
}

/// The categories of an owner, by name (public).
pub async fn list_categories(db: &PgPool, owner_id: Uuid) -> Result<Vec<Category>, CatalogError> {
    let mut conn = db.acquire().await?;
    Ok(repo::list_categories(&mut conn, owner_id).await?)
}

/// One category (public).
pub async fn get_category(db: &PgPool, id: Uuid) -> Result<Category, CatalogError> {
    let mut conn = db.acquire().await?;
    repo::fetch_category(&mut conn, id).await?.ok_or(CatalogError::NotFound("category"))
}

#[tracing::instrument(skip_all, fields(category_id = %id))]
pub async fn rename_category(
    db: &PgPool,
    cache: &CatalogCache,
    caller: &Caller,
    id: Uuid,
    name: CategoryName,
) -> Result<Category, CatalogError> {
    caller.require_user()?;
    let mut tx = db.begin().await?;
    let category = repo::lock_category(&mut tx, id, true).await?.ok_or(CatalogError::NotFound("category"))?;
    authorize_object(caller, category.owner_id, "category")?;
    let Some(renamed) = category.renamed(name, now()) else {
        tx.rollback().await?;
        return Ok(category);
    };
    repo::update_category(&mut tx, &renamed).await.map_err(|e| name_taken(e, &renamed))?;
    announce(&mut tx, None, events::category_changed(&renamed, false)).await?;
    tx.commit().await?;
    cache.invalidate(Changes::default().owner(renamed.owner_id)).await;
    Ok(renamed)
}

/// Deletes a category; its products stay, without a category (each
/// announced as changed).
#[tracing::instrument(skip_all, fields(category_id = %id))]
pub async fn delete_category(db: &PgPool, cache: &CatalogCache, caller: &Caller, id: Uuid) -> Result<(), CatalogError> {
    caller.require_user()?;
    let now = now();
    let mut tx = db.begin().await?;
    let category = repo::lock_category(&mut tx, id, true).await?.ok_or(CatalogError::NotFound("category"))?;
    authorize_object(caller, category.owner_id, "category")?;
    let mut changes = Changes::default();
    changes.owner(category.owner_id);
    for product in repo::uncategorize_products(&mut tx, id, now).await? {
        announce(&mut tx, None, events::product_changed(&product, false)).await?;
        changes.product(product.owner_id, product.id);
    }
    repo::delete_category(&mut tx, id).await?;
    announce(&mut tx, None, events::category_changed(&Category { updated_at: now, ..category }, true)).await?;
    tx.commit().await?;
    cache.invalidate(&changes).await;
    tracing::info!("category deleted");
    Ok(())
}
