//! Consumed messages (one handler per file) and the published-event mapper.
//!
//! The four catalog change events share one queue,
//! `catalog-publisher.catalog_changed`: they are applied in the order the
//! catalog published them (an owner before its products, a product before
//! its stock, in the common case), one consumer per replica applies a batch
//! of mixed changes in one transaction, and the consumers of one replica
//! never contend for the same owner's dirty mark. Out-of-order arrivals
//! (retries, redeliveries, replays) are still safe: every change is applied
//! only when newer than the stored row.

pub mod category_changed;
pub mod owner_changed;
pub mod product_changed;
pub mod stock_changed;

use contracts::Message as _;
use contracts::catalog::{CatalogPublishedV1, CategoryChangedV1, OwnerChangedV1, ProductChangedV1, StockChangedV1};
use platform::ErrorKind;
use platform::messaging::{ConsumerSpec, Handler, HandlerError, Incoming};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::ChangeError;

pub const CONSUMER: ConsumerSpec = ConsumerSpec {
    name: "catalog-publisher.catalog_changed",
    bindings: &[
        OwnerChangedV1::ROUTING_KEY,
        CategoryChangedV1::ROUTING_KEY,
        ProductChangedV1::ROUTING_KEY,
        StockChangedV1::ROUTING_KEY,
    ],
    max_batch: None,
};

/// Routes each catalog change to its handler.
pub struct OnCatalogChanged;

impl Handler for OnCatalogChanged {
    async fn handle(&self, tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        match msg.envelope.message_type.as_str() {
            OwnerChangedV1::TYPE => owner_changed::handle(tx, msg).await,
            CategoryChangedV1::TYPE => category_changed::handle(tx, msg).await,
            ProductChangedV1::TYPE => product_changed::handle(tx, msg).await,
            StockChangedV1::TYPE => stock_changed::handle(tx, msg).await,
            other => Err(HandlerError::new(
                ErrorKind::BadRequest,
                anyhow::anyhow!("unexpected message type {other:?} on {}", CONSUMER.name),
            )),
        }
    }
}

/// A change that can never be applied: parked in the dead-letter queue at once.
fn refused(e: ChangeError) -> HandlerError {
    HandlerError::new(ErrorKind::BadRequest, e)
}

pub fn catalog_published(
    owner_id: Uuid,
    version: i64,
    key: String,
    versioned_key: String,
    sha256: String,
    published_at: OffsetDateTime,
) -> CatalogPublishedV1 {
    CatalogPublishedV1 { owner_id, version, key, versioned_key, sha256, published_at }
}
