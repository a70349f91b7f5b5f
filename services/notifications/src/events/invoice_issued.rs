//! `InvoiceIssuedV1` → mail the customer their nota fiscal's number.

use contracts::Message as _;
use contracts::invoices::InvoiceIssuedV1;
use platform::messaging::{ConsumerSpec, Handler, HandlerError, Incoming};
use sqlx::PgConnection;

use crate::app::{self, EmailRequest};
use crate::domain::{EmailKind, render};

pub const CONSUMER: ConsumerSpec =
    ConsumerSpec { name: "notifications.invoice_issued", bindings: &[InvoiceIssuedV1::ROUTING_KEY], max_batch: None };

pub struct OnInvoiceIssued;

impl Handler for OnInvoiceIssued {
    async fn handle(&self, tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let event = msg.payload::<InvoiceIssuedV1>()?;
        let inv = &event.payload;
        let recipient = app::recipient_of(tx, inv.order_id).await?;
        let req = EmailRequest {
            kind: EmailKind::InvoiceIssued,
            order_id: inv.order_id,
            customer_id: inv.customer_id,
            to: recipient.email.as_deref(),
            source: event.message_id,
        };
        app::queue_email(tx, req, render::invoice_issued(inv)).await?;
        Ok(())
    }
}
