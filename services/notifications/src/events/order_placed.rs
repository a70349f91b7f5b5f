//! `OrderPlacedV1` → remember who receives the order's e-mails.

use contracts::Message as _;
use contracts::orders::OrderPlacedV1;
use platform::messaging::{ConsumerSpec, Handler, HandlerError, Incoming};
use sqlx::PgConnection;

use crate::app;
use crate::domain::Recipient;

pub const CONSUMER: ConsumerSpec =
    ConsumerSpec { name: "notifications.order_placed", bindings: &[OrderPlacedV1::ROUTING_KEY], max_batch: None };

pub struct OnOrderPlaced;

impl Handler for OnOrderPlaced {
    async fn handle(&self, tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let event = msg.payload::<OrderPlacedV1>()?;
        let o = &event.payload;
        let email = o.contact_email.as_deref().map(str::trim).filter(|e| !e.is_empty()).map(str::to_string);
        app::record_recipient(tx, &Recipient { order_id: o.order_id, customer_id: o.customer_id, email }).await
    }
}
