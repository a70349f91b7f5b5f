//! `ReserveStockV1` → reserve every line for the order, or none, and answer
//! `StockReservedV1` or `StockRejectedV1`.

use std::time::Duration;

use contracts::Message as _;
use contracts::catalog::ReserveStockV1;
use platform::messaging::{ConsumerSpec, Handler, HandlerError, Incoming};
use sqlx::PgConnection;

use crate::app;
use crate::domain::{Quantity, ReservationLine, ReservationRequest};

pub const CONSUMER: ConsumerSpec =
    ConsumerSpec { name: "catalog.reserve_stock", bindings: &[ReserveStockV1::ROUTING_KEY], max_batch: Some(1) };

pub struct OnReserveStock {
    pub ttl: Duration,
}

impl Handler for OnReserveStock {
    async fn handle(&self, tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let command = msg.payload::<ReserveStockV1>()?;
        let cause = Some(&msg.envelope);
        let Some(request) = parse(&command.payload) else {
            tracing::warn!(order_id = %command.payload.order_id, "invalid reserve command, rejected");
            app::reject_invalid(tx, cause, command.payload.order_id).await?;
            return Ok(());
        };
        // The consumer commits after this returns: the cache learns of the
        // stock moved from its StockChangedV1 (catalog.cache_invalidation).
        app::reserve(tx, cause, &request, self.ttl, &mut app::Changes::default()).await?;
        Ok(())
    }
}

/// The request, or `None` when it can never be served as sent (no lines,
/// too many, a quantity out of range).
fn parse(c: &ReserveStockV1) -> Option<ReservationRequest> {
    let lines = c
        .lines
        .iter()
        .map(|l| {
            Quantity::parse(l.quantity).ok().map(|quantity| ReservationLine { product_id: l.product_id, quantity })
        })
        .collect::<Option<Vec<_>>>()?;
    ReservationRequest::new(c.order_id, lines).ok()
}
