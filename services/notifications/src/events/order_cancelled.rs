//! `OrderCancelledV1` → tell the customer why their order was cancelled.
//!
//! The event carries the contact e-mail itself; only when it does not is the
//! recipient recorded from `OrderPlacedV1` needed (and waited for).

use contracts::Message as _;
use contracts::orders::OrderCancelledV1;
use platform::messaging::{ConsumerSpec, Handler, HandlerError, Incoming};
use sqlx::PgConnection;

use crate::app::{self, EmailRequest};
use crate::domain::{EmailKind, render};

pub const CONSUMER: ConsumerSpec =
    ConsumerSpec { name: "notifications.order_cancelled", bindings: &[OrderCancelledV1::ROUTING_KEY], max_batch: None };

pub struct OnOrderCancelled;

impl Handler for OnOrderCancelled {
    async fn handle(&self, tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let event = msg.payload::<OrderCancelledV1>()?;
        let c = &event.payload;
        let carried = c.contact_email.as_deref().map(str::trim).filter(|e| !e.is_empty()).map(str::to_string);
        let to = match carried {
            Some(to) => Some(to),
            None => app::recipient_of(tx, c.order_id).await?.email,
        };
        let req = EmailRequest {
            kind: EmailKind::OrderCancelled,
            order_id: c.order_id,
            customer_id: c.customer_id,
            to: to.as_deref(),
            source: event.message_id,
        };
        app::queue_email(tx, req, render::order_cancelled(c)).await?;
        Ok(())
    }
}
