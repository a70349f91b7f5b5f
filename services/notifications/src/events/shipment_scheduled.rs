//! `ShipmentScheduledV1` → mail the customer the tracking code.

use contracts::Message as _;
use contracts::shipping::ShipmentScheduledV1;
use platform::messaging::{ConsumerSpec, Handler, HandlerError, Incoming};
use sqlx::PgConnection;

use crate::app::{self, EmailRequest};
use crate::domain::{EmailKind, render};

pub const CONSUMER: ConsumerSpec = ConsumerSpec {
    name: "notifications.shipment_scheduled",
    bindings: &[ShipmentScheduledV1::ROUTING_KEY],
    max_batch: None,
};

pub struct OnShipmentScheduled;

impl Handler for OnShipmentScheduled {
    async fn handle(&self, tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let event = msg.payload::<ShipmentScheduledV1>()?;
        let s = &event.payload;
        let recipient = app::recipient_of(tx, s.order_id).await?;
        let req = EmailRequest {
            kind: EmailKind::ShipmentScheduled,
            order_id: s.order_id,
            customer_id: s.customer_id,
            to: recipient.email.as_deref(),
            source: event.message_id,
        };
        app::queue_email(tx, req, render::shipment_scheduled(s)).await?;
        Ok(())
    }
}
