//! `OrderConfirmedV1` → issue the order's invoice.
//!
//! Only a confirmed order (stock committed, payment captured) is invoiced:
//! an order that is placed and then cancelled never gets a nota fiscal.

use contracts::Message as _;
use contracts::orders::OrderConfirmedV1;
use platform::ErrorKind;
use platform::messaging::{ConsumerSpec, Handler, HandlerError, Incoming};
use sqlx::PgConnection;

use crate::app;
use crate::domain::{InvoiceDraft, InvoiceLine};

pub const CONSUMER: ConsumerSpec =
    ConsumerSpec { name: "invoices.order_confirmed", bindings: &[OrderConfirmedV1::ROUTING_KEY], max_batch: None };

pub struct OnOrderConfirmed;

impl Handler for OnOrderConfirmed {
    async fn handle(&self, tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let event = msg.payload::<OrderConfirmedV1>()?;
        let o = &event.payload;
        let lines = o
            .lines
            .iter()
            .map(|l| InvoiceLine {
                sku: l.sku.clone(),
                quantity: l.quantity,
                unit_price_cents: l.unit_price_cents,
                line_total_cents: l.line_total_cents,
            })
            .collect();
        let freight = o.shipping.as_ref().map_or(0, |s| s.freight_cents);
        let draft = InvoiceDraft::new(o.order_id, o.customer_id, o.currency.clone(), lines, freight, o.total_cents)
            .map_err(|e| HandlerError::new(ErrorKind::BadRequest, e))?;
        app::issue_invoice(tx, &event, draft).await?;
        Ok(())
    }
}
