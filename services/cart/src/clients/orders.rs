//! `POST /orders` on orders, as the customer: the caller's headers and the
//! checkout's `Idempotency-Key` are forwarded, so orders replays the same
//! order for a retry with the same key and body. 201/200 → the order; 4xx →
//! orders' problem, passed on to the client; 5xx, a timeout or no answer →
//! orders is unavailable (the key makes the client's retry safe).

use std::time::Duration;

use platform::error::FieldError;
use platform::http::caller::{CHANNEL_HEADER, ROLES_HEADER, USER_ID_HEADER};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Address, OrderDraft, Payment};

/// The body of `POST /orders`.
#[derive(Debug, Serialize)]
struct OrderRequest<'a> {
    customer_id: Uuid,
    currency: &'static str,
    lines: Vec<LineJson<'a>>,
    shipping: ShippingJson<'a>,
    payment: &'a Payment,
    contact_email: &'a str,
}

#[derive(Debug, Serialize)]
struct LineJson<'a> {
    product_id: Uuid,
    sku: &'a str,
    quantity: i64,
    unit_price_cents: i64,
}

#[derive(Debug, Serialize)]
struct ShippingJson<'a> {
    quote_id: Uuid,
    freight_cents: i64,
    address: &'a Address,
}

/// The exact body sent to orders for `draft` (kept, so a retry sends the
/// same bytes).
pub fn order_body(draft: &OrderDraft) -> Result<String, serde_json::Error> {
    serde_json::to_string(&OrderRequest {
        customer_id: draft.customer_id,
        currency: draft.currency.code(),
        lines: draft
            .lines
            .iter()
            .map(|l| LineJson {
                product_id: l.product_id,
                sku: &l.sku,
                quantity: l.quantity.get(),
                unit_price_cents: l.unit_price.get(),
            })
            .collect(),
        shipping: ShippingJson {
            quote_id: draft.quote_id,
            freight_cents: draft.freight.get(),
            address: &draft.address,
        },
        payment: &draft.payment,
        contact_email: draft.contact_email.as_str(),
    })
}

/// The caller's identity headers, as the gateway set them.
#[derive(Debug, Clone)]
pub struct Forwarded {
    pub user_id: String,
    pub roles: Option<String>,
}

/// The order orders placed (or replayed).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Placed {
    pub id: Uuid,
    pub status: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OrdersFailure {
    /// Orders refused the order: its problem, to pass on.
    #[error("orders refused the order ({status}): {detail}")]
    Rejected { status: u16, detail: String, errors: Vec<FieldError> },
    #[error("orders is unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, Deserialize)]
struct ProblemJson {
    detail: Option<String>,
    title: Option<String>,
    #[serde(default)]
    errors: Vec<FieldErrorJson>,
}

#[derive(Debug, Deserialize)]
struct FieldErrorJson {
    field: String,
    message: String,
}

#[derive(Clone)]
pub struct OrdersClient {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl OrdersClient {
    pub fn new(http: reqwest::Client, base: &str, timeout: Duration) -> Self {
        OrdersClient { http, base: base.to_string(), timeout }
    }

    #[tracing::instrument(skip(self, body, caller))]
    pub async fn place(&self, body: &str, caller: &Forwarded, key: &str) -> Result<Placed, OrdersFailure> {
        let mut req = self
            .http
            .post(super::url(&self.base, "/orders"))
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", key)
            .header(USER_ID_HEADER, &caller.user_id)
            // The order's prices are the catalog's: orders accepts a
            // customer's order only from the cart.
            .header(CHANNEL_HEADER, "cart");
        if let Some(roles) = &caller.roles {
            req = req.header(ROLES_HEADER, roles);
        }
        if let Some(tp) = platform::telemetry::current_traceparent() {
            req = req.header("traceparent", tp);
        }
        let res = req.body(body.to_string()).send().await.map_err(|e| OrdersFailure::Unavailable(e.to_string()))?;
        let status = res.status();
        if status.is_success() {
            return res.json::<Placed>().await.map_err(|e| {
                // Placed, perhaps, but unreadable: a retry with the key finds out.
                OrdersFailure::Unavailable(format!("the order does not parse: {e}"))
            });
        }
        if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
            let text = res.text().await.unwrap_or_default();
            let problem: Option<ProblemJson> = serde_json::from_str(&text).ok();
            let (detail, errors) = match problem {
                Some(p) => (
                    p.detail.or(p.title).unwrap_or_else(|| "orders refused the order".to_string()),
                    p.errors.into_iter().map(|e| FieldError { field: e.field, message: e.message }).collect(),
                ),
                None => ("orders refused the order".to_string(), Vec::new()),
            };
            return Err(OrdersFailure::Rejected { status: status.as_u16(), detail, errors });
        }
        Err(OrdersFailure::Unavailable(format!("status {status}")))
    }
}
