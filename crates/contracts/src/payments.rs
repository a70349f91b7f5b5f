//! The order saga's payment commands and the payments service's replies.
//!
//! Commands are named for what they ask (`payments.charge_payment.v1`) and
//! only payments binds to them; the replies are events orders binds to.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Message;

macro_rules! message {
    ($ty:ident, $name:literal, $version:literal) => {
        impl Message for $ty {
            const TYPE: &'static str = concat!("payments.", $name);
            const VERSION: u16 = $version;
            const ROUTING_KEY: &'static str = concat!("payments.", $name, ".v", $version);
        }
    };
}

/// How the customer pays. Card data never reaches feira: a card is a
/// provider token (`tok_...`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentMethodV1 {
    Card { token: String },
    Pix,
}

impl PaymentMethodV1 {
    pub fn kind(&self) -> &'static str {
        match self {
            PaymentMethodV1::Card { .. } => "card",
            PaymentMethodV1::Pix => "pix",
        }
    }
}

/// Command: charge the order's total. Idempotent per order: the provider
/// idempotency key is derived from the order id, so a retry never charges
/// twice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ChargePaymentV1 {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub amount_cents: i64,
    pub currency: String,
    pub method: PaymentMethodV1,
}
message!(ChargePaymentV1, "charge_payment", 1);

/// Reply: the money is captured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PaymentSucceededV1 {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub provider_charge_id: String,
    pub amount_cents: i64,
    pub currency: String,
    /// `card` or `pix`.
    pub method: String,
    #[serde(with = "time::serde::rfc3339")]
    pub captured_at: OffsetDateTime,
}
message!(PaymentSucceededV1, "payment_succeeded", 1);

/// Reply (PIX): the charge exists and waits for the customer to pay it;
/// the saga waits up to `expires_at`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PaymentPendingV1 {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub provider_charge_id: String,
    /// The PIX "copia e cola" code shown to the customer.
    pub pix_code: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}
message!(PaymentPendingV1, "payment_pending", 1);

/// Reply: nothing was captured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PaymentFailedV1 {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    /// `declined`, `insufficient_funds` (the customer's card) or `failed`
    /// (the provider could not be reached in time, or the charge was voided).
    pub reason: String,
    pub detail: String,
}
message!(PaymentFailedV1, "payment_failed", 1);

/// Command (compensation): give the order's money back, or, if the charge
/// has not happened yet, make sure it never does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RefundPaymentV1 {
    pub order_id: Uuid,
    /// Why (the order's cancellation reason).
    pub reason: String,
}
message!(RefundPaymentV1, "refund_payment", 1);

/// Reply to [`RefundPaymentV1`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PaymentRefundedV1 {
    pub order_id: Uuid,
    pub payment_id: Option<Uuid>,
    /// `refunded` (money returned), `voided` (the charge was stopped before
    /// it happened) or `nothing_to_refund`.
    pub outcome: String,
    pub amount_cents: i64,
}
message!(PaymentRefundedV1, "payment_refunded", 1);
