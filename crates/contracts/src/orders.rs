//! Events published by the orders service, and the order saga's commands to
//! payments (which live in [`crate::payments`]).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Message;

macro_rules! message {
    ($ty:ident, $name:literal, $version:literal) => {
        impl Message for $ty {
            const TYPE: &'static str = concat!("orders.", $name);
            const VERSION: u16 = $version;
            const ROUTING_KEY: &'static str = concat!("orders.", $name, ".v", $version);
        }
    };
}

/// An order was accepted and stored as `PENDING`; the saga starts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct OrderPlacedV1 {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    /// ISO 4217 code.
    pub currency: String,
    pub lines: Vec<OrderLineV1>,
    /// Items plus freight.
    pub total_cents: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub placed_at: OffsetDateTime,
    /// Where the customer's e-mails go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping: Option<ShippingV1>,
}
message!(OrderPlacedV1, "order_placed", 1);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct OrderLineV1 {
    /// The catalog product; absent only in orders placed before the saga.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<Uuid>,
    pub sku: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
}

/// Where and how an order ships.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ShippingV1 {
    /// The shipping service's quote the customer accepted.
    pub quote_id: Uuid,
    pub freight_cents: i64,
    pub address: AddressV1,
}

/// A Brazilian postal address.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AddressV1 {
    pub recipient: String,
    pub street: String,
    pub number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complement: Option<String>,
    pub district: String,
    pub city: String,
    /// Two-letter UF, e.g. `SP`.
    pub state: String,
    /// Eight digits, no hyphen.
    pub cep: String,
}

/// The saga finished: stock is committed and the payment captured.
/// Invoices, shipping and notifications start from here.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct OrderConfirmedV1 {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub currency: String,
    pub lines: Vec<OrderLineV1>,
    /// Items plus freight (the amount charged).
    pub total_cents: i64,
    pub payment_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping: Option<ShippingV1>,
    #[serde(with = "time::serde::rfc3339")]
    pub confirmed_at: OffsetDateTime,
}
message!(OrderConfirmedV1, "order_confirmed", 1);

/// The order ended `CANCELLED`; every compensation has been requested.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct OrderCancelledV1 {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    /// `out_of_stock`, `payment_declined`, `payment_failed`, `timeout`,
    /// `customer_request` or `price_changed`.
    pub reason: String,
    /// True when a captured payment is being refunded.
    pub refund_requested: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_email: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub cancelled_at: OffsetDateTime,
}
message!(OrderCancelledV1, "order_cancelled", 1);

impl OrderPlacedV1 {
    /// A valid example, for documentation and tests.
    pub fn example() -> Self {
        OrderPlacedV1 {
            order_id: Uuid::nil(),
            customer_id: Uuid::nil(),
            currency: "BRL".into(),
            lines: vec![OrderLineV1::example()],
            total_cents: 3980,
            placed_at: OffsetDateTime::UNIX_EPOCH,
            contact_email: Some("ana@example.com".into()),
            shipping: None,
        }
    }
}

impl OrderLineV1 {
    pub fn example() -> Self {
        OrderLineV1 {
            product_id: Some(Uuid::nil()),
            sku: "ABC-1".into(),
            quantity: 2,
            unit_price_cents: 1990,
            line_total_cents: 3980,
        }
    }
}

impl AddressV1 {
    pub fn example() -> Self {
        AddressV1 {
            recipient: "Ana Souza".into(),
            street: "Avenida Paulista".into(),
            number: "1000".into(),
            complement: None,
            district: "Bela Vista".into(),
            city: "São Paulo".into(),
            state: "SP".into(),
            cep: "01310100".into(),
        }
    }
}

impl OrderConfirmedV1 {
    /// A valid example, for documentation and tests.
    pub fn example() -> Self {
        OrderConfirmedV1 {
            order_id: Uuid::nil(),
            customer_id: Uuid::nil(),
            currency: "BRL".into(),
            lines: vec![OrderLineV1::example()],
            total_cents: 3980,
            payment_id: Uuid::nil(),
            contact_email: Some("ana@example.com".into()),
            shipping: Some(ShippingV1 { quote_id: Uuid::nil(), freight_cents: 0, address: AddressV1::example() }),
            confirmed_at: OffsetDateTime::UNIX_EPOCH,
        }
    }
}
