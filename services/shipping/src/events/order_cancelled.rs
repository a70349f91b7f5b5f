//! `OrderCancelledV1` → cancel the order's shipment (or flag a booked one).

use contracts::Message as _;
use contracts::orders::OrderCancelledV1;
use platform::messaging::{ConsumerSpec, Handler, HandlerError, Incoming};
use sqlx::PgConnection;

use crate::app;

pub const CONSUMER: ConsumerSpec =
    ConsumerSpec { name: "shipping.order_cancelled", bindings: &[OrderCancelledV1::ROUTING_KEY], max_batch: None };

pub struct OnOrderCancelled;

impl Handler for OnOrderCancelled {
    async fn handle(&self, tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let event = msg.payload::<OrderCancelledV1>()?;
        app::cancel_shipment(tx, &event.payload).await
    }
}
