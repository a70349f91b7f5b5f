//! The catalog's own change events → invalidate what they made stale in the
//! cache (see `app::cache`). Every replica of the catalog shares one Redis
//! and this one queue, so each event is applied once, for all of them.
//!
//! This covers what the use cases' own invalidation after commit cannot:
//! stock moved inside a consumer's transaction (the saga's reservations), a
//! replica that crashed between its commit and its invalidation, and a copy
//! read from a lagging read replica meanwhile (with a read replica, the
//! invalidation first waits for it to replay the change). Redis being down
//! does not fail the message: the cache replays the invalidation later.

use contracts::Message as _;
use contracts::catalog::{CategoryChangedV1, OwnerChangedV1, ProductChangedV1, StockChangedV1};
use platform::ErrorKind;
use platform::messaging::{ConsumerSpec, Handler, HandlerError, Incoming};
use sqlx::PgConnection;

use crate::app::{CatalogCache, Changes, ReplicaLag};

pub const CONSUMER: ConsumerSpec = ConsumerSpec {
    name: "catalog.cache_invalidation",
    bindings: &[
        ProductChangedV1::ROUTING_KEY,
        StockChangedV1::ROUTING_KEY,
        CategoryChangedV1::ROUTING_KEY,
        OwnerChangedV1::ROUTING_KEY,
    ],
    max_batch: None,
};

pub struct OnCatalogChanged {
    pub cache: CatalogCache,
    /// `None` when reads go to the primary.
    pub replica: Option<ReplicaLag>,
}

impl Handler for OnCatalogChanged {
    async fn handle(&self, tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let changes = changes_of(msg)?;
        if let Some(replica) = &self.replica {
            replica.wait(tx).await;
        }
        self.cache.invalidate(&changes).await;
        Ok(())
    }
}

/// What the event made stale.
fn changes_of(msg: &Incoming) -> Result<Changes, HandlerError> {
    let mut changes = Changes::default();
    match msg.envelope.message_type.as_str() {
        ProductChangedV1::TYPE => {
            let e = msg.payload::<ProductChangedV1>()?.payload;
            changes.product(e.owner_id, e.product_id);
        }
        StockChangedV1::TYPE => {
            let e = msg.payload::<StockChangedV1>()?.payload;
            changes.product(e.owner_id, e.product_id);
        }
        CategoryChangedV1::TYPE => {
            changes.owner(msg.payload::<CategoryChangedV1>()?.payload.owner_id);
        }
        OwnerChangedV1::TYPE => {
            changes.owner(msg.payload::<OwnerChangedV1>()?.payload.owner_id);
        }
        other => {
            return Err(HandlerError::new(
                ErrorKind::BadRequest,
                anyhow::anyhow!("{other} is not a catalog change this consumer knows"),
            ));
        }
    }
    Ok(changes)
}
