//! Events published by the invoices service.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Message;

/// An invoice (nota fiscal) was issued for an order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct InvoiceIssuedV1 {
    pub invoice_id: Uuid,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub series: String,
    /// Gapless within the series.
    pub number: i64,
    pub currency: String,
    pub total_cents: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
}

impl Message for InvoiceIssuedV1 {
    const TYPE: &'static str = "invoices.invoice_issued";
    const VERSION: u16 = 1;
    const ROUTING_KEY: &'static str = "invoices.invoice_issued.v1";
}

impl InvoiceIssuedV1 {
    /// A valid example, for documentation and tests.
    pub fn example() -> Self {
        InvoiceIssuedV1 {
            invoice_id: Uuid::nil(),
            order_id: Uuid::nil(),
            customer_id: Uuid::nil(),
            series: "1".into(),
            number: 1,
            currency: "BRL".into(),
            total_cents: 3980,
            issued_at: OffsetDateTime::UNIX_EPOCH,
        }
    }
}
