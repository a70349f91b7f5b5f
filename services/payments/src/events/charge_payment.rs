//! `ChargePaymentV1` → record the payment for the worker (or answer at once).

use contracts::Message as _;
use contracts::payments::ChargePaymentV1;
use platform::ErrorKind;
use platform::messaging::{ConsumerSpec, Handler, HandlerError, Incoming};
use sqlx::PgConnection;

use crate::app;
use crate::domain::ChargeRequest;

pub const CONSUMER: ConsumerSpec =
    ConsumerSpec { name: "payments.charge_payment", bindings: &[ChargePaymentV1::ROUTING_KEY], max_batch: None };

pub struct OnChargePayment;

impl Handler for OnChargePayment {
    async fn handle(&self, tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let cmd = msg.payload::<ChargePaymentV1>()?;
        // A command that can never be charged is parked in the DLQ with
        // its reason (the saga's step timeout cancels the order).
        let req = ChargeRequest::try_from(&cmd.payload).map_err(|e| HandlerError::new(ErrorKind::BadRequest, e))?;
        app::charge_payment(tx, &cmd, req).await
    }
}
