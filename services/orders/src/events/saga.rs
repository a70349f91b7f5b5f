//! The saga's replies: one queue, `orders.saga`, for every answer the order
//! saga waits for (stock, payment, shipment). Each reply is turned into a
//! [`SagaEvent`] and applied to its order in the consumer's transaction.

use contracts::Message;
use contracts::catalog::{StockCommittedV1, StockRejectedV1, StockReleasedV1, StockReservedV1};
use contracts::payments::{PaymentFailedV1, PaymentPendingV1, PaymentRefundedV1, PaymentSucceededV1};
use contracts::shipping::ShipmentScheduledV1;
use platform::ErrorKind;
use platform::messaging::{ConsumerSpec, Handler, HandlerError, Incoming};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::app::saga::{self, Cause};
use crate::domain::{SagaEvent, Timeouts};

pub const CONSUMER: ConsumerSpec = ConsumerSpec {
    name: "orders.saga",
    bindings: &[
        StockReservedV1::ROUTING_KEY,
        StockRejectedV1::ROUTING_KEY,
        StockReleasedV1::ROUTING_KEY,
        StockCommittedV1::ROUTING_KEY,
        PaymentSucceededV1::ROUTING_KEY,
        PaymentPendingV1::ROUTING_KEY,
        PaymentFailedV1::ROUTING_KEY,
        PaymentRefundedV1::ROUTING_KEY,
        ShipmentScheduledV1::ROUTING_KEY,
    ],
    max_batch: None,
};

pub struct SagaReplies {
    pub timeouts: Timeouts,
}

/// The order a reply is about, and what it says.
pub fn parse(msg: &Incoming) -> Result<(Uuid, SagaEvent), HandlerError> {
    let t = msg.envelope.message_type.as_str();
    Ok(if t == StockReservedV1::TYPE {
        let p = msg.payload::<StockReservedV1>()?.payload;
        (p.order_id, SagaEvent::StockReserved { expires_at: p.expires_at })
    } else if t == StockRejectedV1::TYPE {
        let p = msg.payload::<StockRejectedV1>()?.payload;
        (p.order_id, SagaEvent::StockRejected { reason: p.reason })
    } else if t == StockReleasedV1::TYPE {
        let p = msg.payload::<StockReleasedV1>()?.payload;
        (p.order_id, SagaEvent::StockReleased { reason: p.reason })
    } else if t == StockCommittedV1::TYPE {
        (msg.payload::<StockCommittedV1>()?.payload.order_id, SagaEvent::StockCommitted)
    } else if t == PaymentSucceededV1::TYPE {
        let p = msg.payload::<PaymentSucceededV1>()?.payload;
        (p.order_id, SagaEvent::PaymentSucceeded { payment_id: p.payment_id })
    } else if t == PaymentPendingV1::TYPE {
        let p = msg.payload::<PaymentPendingV1>()?.payload;
        (p.order_id, SagaEvent::PaymentPending { expires_at: p.expires_at })
    } else if t == PaymentFailedV1::TYPE {
        let p = msg.payload::<PaymentFailedV1>()?.payload;
        (p.order_id, SagaEvent::PaymentFailed { reason: p.reason })
    } else if t == PaymentRefundedV1::TYPE {
        let p = msg.payload::<PaymentRefundedV1>()?.payload;
        (p.order_id, SagaEvent::PaymentRefunded { outcome: p.outcome })
    } else if t == ShipmentScheduledV1::TYPE {
        let p = msg.payload::<ShipmentScheduledV1>()?.payload;
        (p.order_id, SagaEvent::ShipmentScheduled { tracking_code: p.tracking_code })
    } else {
        return Err(HandlerError::new(ErrorKind::BadRequest, anyhow::anyhow!("orders.saga does not handle {t}")));
    })
}

impl Handler for SagaReplies {
    async fn handle(&self, tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let (order_id, event) = parse(msg)?;
        if saga::advance(tx, order_id, &event, Cause::Message(&msg.envelope), &self.timeouts).await?.is_none() {
            // Operators reserve stock by hand too (catalog's /reservations):
            // a reply about an order that is not ours is not for the saga.
            tracing::info!(%order_id, message_type = %msg.envelope.message_type, "reply for an unknown order ignored");
        }
        Ok(())
    }
}
