//! `ReleaseStockV1` (compensation) → give the order's held stock back and
//! answer `StockReleasedV1` (`released`, `expired`, or `nothing_reserved`).

use contracts::Message as _;
use contracts::catalog::ReleaseStockV1;
use platform::messaging::{ConsumerSpec, Handler, HandlerError, Incoming};
use sqlx::PgConnection;

use crate::app;

pub const CONSUMER: ConsumerSpec =
    ConsumerSpec { name: "catalog.release_stock", bindings: &[ReleaseStockV1::ROUTING_KEY], max_batch: Some(1) };

pub struct OnReleaseStock;

impl Handler for OnReleaseStock {
    async fn handle(&self, tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let command = msg.payload::<ReleaseStockV1>()?;
        let reason = if command.payload.reason.trim().is_empty() { "released" } else { command.payload.reason.trim() };
        // The consumer commits after this returns: the cache learns of the
        // stock moved from its StockChangedV1 (catalog.cache_invalidation).
        let changes = &mut app::Changes::default();
        app::release(tx, Some(&msg.envelope), command.payload.order_id, reason, changes).await?;
        Ok(())
    }
}
