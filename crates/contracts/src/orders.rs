//! Events published by the orders service.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Message;

/// An order was accepted and stored as `PENDING`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct OrderPlacedV1 {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    /// ISO 4217 code.
    pub currency: String,
    pub lines: Vec<OrderLineV1>,
    pub total_cents: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub placed_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct OrderLineV1 {
    pub sku: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
}

impl Message for OrderPlacedV1 {
    const TYPE: &'static str = "orders.order_placed";
    const VERSION: u16 = 1;
    const ROUTING_KEY: &'static str = "orders.order_placed.v1";
}

impl OrderPlacedV1 {
    /// A valid example, for documentation and tests.
    pub fn example() -> Self {
        OrderPlacedV1 {
            order_id: Uuid::nil(),
            customer_id: Uuid::nil(),
            currency: "BRL".into(),
            lines: vec![OrderLineV1 {
                sku: "ABC-1".into(),
                quantity: 2,
                unit_price_cents: 1990,
                line_total_cents: 3980,
            }],
            total_cents: 3980,
            placed_at: OffsetDateTime::UNIX_EPOCH,
        }
    }
}
