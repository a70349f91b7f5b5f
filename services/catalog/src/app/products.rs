//! Products.

use platform::http::{Caller, page};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{CatalogCache, Changes, announce, authorize_object, authorize_owner, may_manage, may_manage_some, now};
use crate::domain::{NewProduct, Product, ProductFilter, ProductPatch, ProductView};
use crate::{CatalogError, events, repo};

/// A new product of `owner_id` (whose profile must exist), with no stock yet.
#[tracing::instrument(skip_all, fields(owner_id = %owner_id))]
pub async fn create_product(
    db: &PgPool,
    cache: &CatalogCache,
    caller: &Caller,
    owner_id: Uuid,
    new: NewProduct,
) -> Result<ProductView, CatalogError> {
    authorize_owner(caller, owner_id)?;
    let product = Product::create(owner_id, new, now());
    let mut tx = db.begin().await?;
    if repo::fetch_owner(&mut tx, owner_id).await?.is_none() {
        return Err(CatalogError::NoOwner);
    }
    if let Some(category) = product.category_id {
        hold_category(&mut tx, owner_id, category).await?;
    }
    repo::insert_product(&mut tx, &product).await.map_err(|e| sku_taken(e, &product))?;
    announce(&mut tx, None, events::product_changed(&product, false)).await?;
    tx.commit().await?;
    cache.invalidate(Changes::default().product(owner_id, product.id)).await;
    tracing::info!(product_id = %product.id, "product created");
    Ok(ProductView { product, available: 0 })
}

/// Checks that `category` is one of `owner_id`'s and keeps it from being
/// deleted until the transaction ends.
async fn hold_category(conn: &mut PgConnection, owner_id: Uuid, category: Uuid) -> Result<(), CatalogError> {
    match repo::lock_category(conn, category, false).await? {
        Some(c) if c.owner_id == owner_id => Ok(()),
        _ => Err(CatalogError::Invalid { field: "category_id", message: "no such category of this owner".into() }),
    }
}

fn sku_taken(e: sqlx::Error, p: &Product) -> CatalogError {
    if repo::violates(&e, "products_sku") {
        return CatalogError::Conflict(format!("the owner already has a product with sku {:?}", p.sku.as_str()));
    }
    e.into()
}

/// A product: anyone sees an active one (cached); an inactive one only its
/// seller and admins (read each time; others get 404).
#[tracing::instrument(skip_all, fields(product_id = %id))]
pub async fn get_product(
    db: &PgPool,
    cache: &CatalogCache,
    caller: &Caller,
    id: Uuid,
) -> Result<ProductView, CatalogError> {
    let public = cache
        .product(id, async {
            let mut conn = db.acquire().await?;
            match repo::fetch_product(&mut conn, id).await? {
                Some(p) if p.product.active => Ok(p),
                _ => Err(CatalogError::NotFound("product")),
            }
        })
        .await;
    match public {
        Err(CatalogError::NotFound(_)) if may_manage_some(caller) => {
            let mut conn = db.acquire().await?;
            match repo::fetch_product(&mut conn, id).await? {
                Some(p) if p.product.active || may_manage(caller, p.product.owner_id) => Ok(p),
                _ => Err(CatalogError::NotFound("product")),
            }
        }
        other => other,
    }
}

/// A page of active products, newest first (public, cached).
#[tracing::instrument(skip_all)]
pub async fn list_products(
    db: &PgPool,
    cache: &CatalogCache,
    filter: &ProductFilter,
    cursor: Option<Uuid>,
    limit: Option<i64>,
) -> Result<(Vec<ProductView>, Option<Uuid>), CatalogError> {
    let limit = page::limit(limit);
    cache
        .product_page(filter, cursor, limit, async {
            let mut conn = db.acquire().await?;
            let products = repo::list_products(&mut conn, filter, cursor, limit + 1).await?;
            Ok(page::cut(products, limit, |p| p.product.id))
        })
        .await
}

/// Changes what `patch` names; announces the product only when it changed.
#[tracing::instrument(skip_all, fields(product_id = %id))]
pub async fn update_product(
    db: &PgPool,
    cache: &CatalogCache,
    caller: &Caller,
    id: Uuid,
    patch: ProductPatch,
) -> Result<ProductView, CatalogError> {
    caller.require_user()?;
    let mut tx = db.begin().await?;
    let product = repo::lock_product(&mut tx, id).await?.ok_or(CatalogError::NotFound("product"))?;
    authorize_object(caller, product.owner_id, "product")?;
    if let Some(category) = product.new_category(&patch) {
        hold_category(&mut tx, product.owner_id, category).await?;
    }
    let mut changes = Changes::default();
    if let Some(changed) = product.patched(patch, now()) {
        repo::update_product(&mut tx, &changed).await.map_err(|e| sku_taken(e, &changed))?;
        announce(&mut tx, None, events::product_changed(&changed, false)).await?;
        changes.product(changed.owner_id, changed.id);
    }
    // The answer of the write, from the primary, as committed.
    let view = repo::fetch_product(&mut tx, id).await?.ok_or(CatalogError::NotFound("product"))?;
    tx.commit().await?;
    cache.invalidate(&changes).await;
    Ok(view)
}

/// Deletes a product for everyone; reservations holding its stock can still
/// be released or committed.
#[tracing::instrument(skip_all, fields(product_id = %id))]
pub async fn delete_product(db: &PgPool, cache: &CatalogCache, caller: &Caller, id: Uuid) -> Result<(), CatalogError> {
    caller.require_user()?;
    let now = now();
    let mut tx = db.begin().await?;
    let product = repo::lock_product(&mut tx, id).await?.ok_or(CatalogError::NotFound("product"))?;
    authorize_object(caller, product.owner_id, "product")?;
    repo::soft_delete_product(&mut tx, id, now).await?;
    let owner_id = product.owner_id;
    announce(&mut tx, None, events::product_changed(&Product { updated_at: now, ..product }, true)).await?;
    tx.commit().await?;
    cache.invalidate(Changes::default().product(owner_id, id)).await;
    tracing::info!("product deleted");
    Ok(())
}
