//! The catalog's Redis cache: what is cached, under which key, for how long,
//! and what each change invalidates. Reads and invalidations both name keys
//! only through this module, so they cannot drift apart.
//!
//! # What is cached (for [`TTL`])
//! - `product:<id>`: an active product ([`super::get_product`]); inactive
//!   ones, which only their seller and admins see, are never cached.
//! - Pages of active products ([`super::list_products`]) under the scope
//!   `products:<owner_id>` when the list names an owner, else under the
//!   global scope `products:*`; the key is a hash of the filter, cursor and
//!   page size.
//! - `catalog:<owner_id>`: the owner's catalog document
//!   ([`super::owner_catalog`]).
//!
//! "Not found" is never cached, nor anything an owner or admin sees that the
//! public does not (inactive products, stock, reservations).
//!
//! # What a change invalidates ([`Changes`])
//! - A product or its stock: its `product:<id>` and its owner's
//!   `catalog:<owner_id>`, and it bumps the owner's scope and the global one
//!   (pages cannot be listed, so every page of both goes at once).
//! - A category or an owner profile: the owner's catalog document (products
//!   carry only a category's id; the products a deleted category leaves are
//!   changes of their own).
//!
//! Invalidation happens twice: by the use case right after its transaction
//! commits (so the writer's next read is fresh on every replica of the
//! service, which share one Redis), and by the service's own change events
//! (`catalog.cache_invalidation`), which cover changes made inside a
//! consumer's transaction (reservations from the saga), another replica that
//! crashed between its commit and its invalidation, and a stale copy read
//! from a lagging read replica: the event's invalidation waits (a little)
//! for the read replica to replay the change first ([`ReplicaLag`]).
//!
//! Redis being down never fails a read or a write: the platform cache answers
//! from the database and replays the invalidations it could not make once
//! Redis is back.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use platform::cache::{Cache, key_hash};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::CatalogError;
use crate::domain::{OwnerCatalog, ProductFilter, ProductView};

/// How long a cached read lives without an invalidation: the staleness bound
/// when an invalidation is lost (Redis unreachable for longer than the
/// platform remembers them) or when a lagging read replica was read after
/// the last one. Short, because every change is invalidated explicitly.
pub const TTL: Duration = Duration::from_secs(60);

/// The longest a change event's invalidation waits for the read replica to
/// replay the change. Beyond it, the invalidation happens anyway (the TTL
/// bounds what a lagging replica can put back) and later events stop
/// waiting until the replica has caught up.
pub const REPLICA_WAIT: Duration = Duration::from_secs(2);

/// The global scope of product lists that name no owner.
const ALL_PRODUCTS: &str = "products:*";

fn product_key(id: Uuid) -> String {
    format!("product:{id}")
}

fn catalog_key(owner_id: Uuid) -> String {
    format!("catalog:{owner_id}")
}

fn products_scope(owner_id: Option<Uuid>) -> String {
    match owner_id {
        Some(owner) => format!("products:{owner}"),
        None => ALL_PRODUCTS.to_string(),
    }
}

/// What identifies a page of products (hashed into its key).
#[derive(Serialize)]
struct PageKey<'a> {
    owner_id: Option<Uuid>,
    category_id: Option<Uuid>,
    q: Option<&'a str>,
    cursor: Option<Uuid>,
    limit: i64,
}

/// The key prefix of the catalog's cache in a namespace (`feira:catalog:`).
pub fn prefix(namespace: &str) -> String {
    format!("{namespace}:catalog:")
}

/// The catalog's cache. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CatalogCache {
    cache: Cache,
}

impl CatalogCache {
    /// The cache of the catalog in `namespace` (`FEIRA_AMQP_NAMESPACE`), on
    /// the Redis at `redis_url`; opens nothing until first used.
    pub fn new(redis_url: &str, namespace: &str) -> Self {
        CatalogCache { cache: Cache::new(redis_url, prefix(namespace)) }
    }

    /// An active product, or `load`'s.
    pub(crate) async fn product(
        &self,
        id: Uuid,
        load: impl Future<Output = Result<ProductView, CatalogError>>,
    ) -> Result<ProductView, CatalogError> {
        self.cache.get_or_load(&product_key(id), TTL, load).await
    }

    /// A page of active products (`limit` already within bounds), or `load`'s.
    pub(crate) async fn product_page(
        &self,
        filter: &ProductFilter,
        cursor: Option<Uuid>,
        limit: i64,
        load: impl Future<Output = Result<(Vec<ProductView>, Option<Uuid>), CatalogError>>,
    ) -> Result<(Vec<ProductView>, Option<Uuid>), CatalogError> {
        let key = PageKey {
            owner_id: filter.owner_id,
            category_id: filter.category_id,
            q: filter.text.as_ref().map(|t| t.as_str()),
            cursor,
            limit,
        };
        let key = format!("page:{}", key_hash(&key));
        self.cache.get_or_load_in(&products_scope(filter.owner_id), &key, TTL, load).await
    }

    /// An owner's catalog document, or `load`'s.
    pub(crate) async fn owner_catalog(
        &self,
        owner_id: Uuid,
        load: impl Future<Output = Result<OwnerCatalog, CatalogError>>,
    ) -> Result<OwnerCatalog, CatalogError> {
        self.cache.get_or_load(&catalog_key(owner_id), TTL, load).await
    }

    /// Drops what `changes` made stale. Call it after the change committed.
    /// Never fails: what Redis cannot take now is replayed when it is back.
    pub async fn invalidate(&self, changes: &Changes) {
        if changes.is_empty() {
            return;
        }
        let keys: Vec<&str> = changes.keys.iter().map(String::as_str).collect();
        self.cache.invalidate(&keys).await;
        for scope in &changes.scopes {
            self.cache.bump(scope).await;
        }
    }

    /// Whether Redis answers now.
    pub async fn is_available(&self) -> bool {
        self.cache.is_available().await
    }
}

/// The cached reads a change made stale, gathered while the change is made
/// and invalidated once it is committed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    keys: BTreeSet<String>,
    scopes: BTreeSet<String>,
}

impl Changes {
    /// A product of `owner_id` changed (its data, its stock, or it was
    /// created or deleted).
    pub fn product(&mut self, owner_id: Uuid, product_id: Uuid) -> &mut Self {
        self.keys.insert(product_key(product_id));
        self.keys.insert(catalog_key(owner_id));
        self.scopes.insert(products_scope(Some(owner_id)));
        self.scopes.insert(ALL_PRODUCTS.to_string());
        self
    }

    /// An owner's profile or one of its categories changed: its catalog
    /// document shows them.
    pub fn owner(&mut self, owner_id: Uuid) -> &mut Self {
        self.keys.insert(catalog_key(owner_id));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.scopes.is_empty()
    }
}

/// Makes invalidations wait until the read replica has replayed the change,
/// so that a miss right after cannot read the replica's older copy and cache
/// it. Only for a service with a read replica.
#[derive(Debug)]
pub struct ReplicaLag {
    replica: PgPool,
    /// The last wait gave up (the replica lags, or cannot be asked): the
    /// next ones only take a quick look, until it has caught up again.
    lagging: AtomicBool,
}

/// How long a quick look at a lagging replica may take.
const QUICK_LOOK: Duration = Duration::from_millis(50);

impl ReplicaLag {
    pub fn new(replica: PgPool) -> Self {
        ReplicaLag { replica, lagging: AtomicBool::new(false) }
    }

    /// Waits (up to [`REPLICA_WAIT`]) until the replica has replayed what
    /// the primary, on `primary`, had written when called. Never fails.
    pub async fn wait(&self, primary: &mut PgConnection) {
        let target: String = match sqlx::query_scalar("SELECT pg_current_wal_lsn()::text").fetch_one(primary).await {
            Ok(lsn) => lsn,
            Err(error) => {
                tracing::debug!(%error, "cannot read the primary's wal position; not waiting for the replica");
                return;
            }
        };
        let budget = if self.lagging.load(Ordering::Acquire) { QUICK_LOOK } else { REPLICA_WAIT };
        match tokio::time::timeout(budget, self.replayed(&target)).await {
            Ok(Ok(())) => {
                if self.lagging.swap(false, Ordering::AcqRel) {
                    tracing::info!("the read replica has caught up; cache invalidations wait for it again");
                }
            }
            outcome => {
                if !self.lagging.swap(true, Ordering::AcqRel) {
                    let error = match outcome {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("not replayed within {} ms", budget.as_millis()),
                    };
                    tracing::warn!(
                        error,
                        "the read replica lags or cannot be asked; cache invalidations stop waiting for it until it \
                         catches up (the cache ttl bounds what it can put back)"
                    );
                }
            }
        }
    }

    /// Returns once the replica has replayed `target` (a standby), or at
    /// once when it is not a standby at all.
    async fn replayed(&self, target: &str) -> sqlx::Result<()> {
        loop {
            let done: Option<bool> = sqlx::query_scalar("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn")
                .bind(target)
                .fetch_one(&self.replica)
                .await?;
            if done != Some(false) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_product_change_invalidates_its_detail_its_owners_catalog_and_both_list_scopes() {
        let (owner, product) = (Uuid::now_v7(), Uuid::now_v7());
        let mut changes = Changes::default();
        changes.product(owner, product);
        let keys: Vec<&str> = changes.keys.iter().map(String::as_str).collect();
        let scopes: Vec<&str> = changes.scopes.iter().map(String::as_str).collect();
        assert_eq!(keys, [catalog_key(owner), product_key(product)]);
        assert_eq!(scopes, [products_scope(None), products_scope(Some(owner))]);
        assert_eq!(products_scope(None), "products:*");
        assert_eq!(product_key(product), format!("product:{product}"));
    }

    #[test]
    fn an_owner_or_category_change_invalidates_only_the_owners_catalog() {
        let owner = Uuid::now_v7();
        let mut changes = Changes::default();
        assert!(changes.is_empty());
        changes.owner(owner).owner(owner);
        assert_eq!(changes.keys.iter().collect::<Vec<_>>(), [&format!("catalog:{owner}")]);
        assert!(changes.scopes.is_empty());
    }

    #[test]
    fn the_prefix_is_the_namespace_and_the_service() {
        assert_eq!(prefix("feira"), "feira:catalog:");
    }
}
