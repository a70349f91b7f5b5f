//! `RefundPaymentV1` → refund, void, or answer that there is nothing to refund.

use contracts::Message as _;
use contracts::payments::RefundPaymentV1;
use platform::messaging::{ConsumerSpec, Handler, HandlerError, Incoming};
use sqlx::PgConnection;

use crate::app;

pub const CONSUMER: ConsumerSpec =
    ConsumerSpec { name: "payments.refund_payment", bindings: &[RefundPaymentV1::ROUTING_KEY], max_batch: None };

pub struct OnRefundPayment;

impl Handler for OnRefundPayment {
    async fn handle(&self, tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let cmd = msg.payload::<RefundPaymentV1>()?;
        app::refund_payment(tx, &cmd).await
    }
}
