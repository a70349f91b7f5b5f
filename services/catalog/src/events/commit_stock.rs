//! `CommitStockV1` → sell the order's held stock and answer
//! `StockCommittedV1`; when nothing is held (released, expired, rejected or
//! unknown) nothing is sold and the answer is `StockReleasedV1` with why.

use contracts::Message as _;
use contracts::catalog::CommitStockV1;
use platform::messaging::{ConsumerSpec, Handler, HandlerError, Incoming};
use sqlx::PgConnection;

use crate::app;

pub const CONSUMER: ConsumerSpec =
    ConsumerSpec { name: "catalog.commit_stock", bindings: &[CommitStockV1::ROUTING_KEY], max_batch: Some(1) };

pub struct OnCommitStock;

impl Handler for OnCommitStock {
    async fn handle(&self, tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let command = msg.payload::<CommitStockV1>()?;
        // The consumer commits after this returns: the cache learns of the
        // stock moved from its StockChangedV1 (catalog.cache_invalidation).
        app::commit(tx, Some(&msg.envelope), command.payload.order_id, &mut app::Changes::default()).await?;
        Ok(())
    }
}
