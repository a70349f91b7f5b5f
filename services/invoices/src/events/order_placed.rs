//! `OrderPlacedV1` → issue the order's invoice.

use contracts::Message as _;
use contracts::orders::OrderPlacedV1;
use platform::ErrorKind;
use platform::messaging::{ConsumerSpec, Handler, HandlerError, Incoming};
use sqlx::PgConnection;

use crate::app;
use crate::domain::{InvoiceDraft, InvoiceLine};

pub const CONSUMER: ConsumerSpec =
    ConsumerSpec { name: "invoices.order_placed", bindings: &[OrderPlacedV1::ROUTING_KEY] };

pub struct OnOrderPlaced;

impl Handler for OnOrderPlaced {
    async fn handle(&self, tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let event = msg.payload::<OrderPlacedV1>()?;
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
        let draft = InvoiceDraft::new(o.order_id, o.customer_id, o.currency.clone(), lines, o.total_cents)
            .map_err(|e| HandlerError::new(ErrorKind::BadRequest, e))?;
        app::issue_invoice(tx, &event, draft).await?;
        Ok(())
    }
}
