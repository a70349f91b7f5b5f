//! `/orders`: place, read and list orders.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use platform::ApiError;
use platform::error::FieldErrors;
use platform::http::idempotency::IdempotencyKey;
use platform::http::{Caller, Json};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::app;
use crate::domain::{
    Address, Cents, Cep, Checkout, Currency, Email, MAX_LINES, NewOrder, Order, OrderLine, PaymentMethod, Quantity,
    Shipping, Sku, Uf, text,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(place_order, list_orders))
        .routes(routes!(get_order))
        .routes(routes!(get_timeline))
        .routes(routes!(cancel_order))
}

/// A request to place an order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    pub customer_id: Uuid,
    /// ISO 4217: BRL, USD or EUR.
    #[schema(example = "BRL")]
    pub currency: String,
    /// 1 to 100 items.
    #[serde(alias = "lines")]
    pub items: Vec<OrderItemRequest>,
    pub shipping: ShippingRequest,
    pub payment: PaymentRequest,
    /// Where the order's e-mails go.
    #[schema(example = "ana@example.com")]
    pub contact_email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingRequest {
    /// The shipping service's quote the customer accepted.
    pub quote_id: Uuid,
    /// The quote's price, added to the total.
    #[schema(example = 1500)]
    pub freight_cents: i64,
    pub address: AddressRequest,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressRequest {
    #[schema(example = "Ana Souza")]
    pub recipient: String,
    #[schema(example = "Avenida Paulista")]
    pub street: String,
    #[schema(example = "1000")]
    pub number: String,
    #[serde(default)]
    pub complement: Option<String>,
    #[schema(example = "Bela Vista")]
    pub district: String,
    #[schema(example = "São Paulo")]
    pub city: String,
    /// Two-letter UF.
    #[schema(example = "SP")]
    pub state: String,
    /// Eight digits; `01310-100` is accepted.
    #[schema(example = "01310100")]
    pub cep: String,
}

/// A provider card token (`tok_...`) or PIX.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// `card` or `pix`.
    #[serde(rename = "type")]
    #[schema(example = "card")]
    pub kind: String,
    /// For `card`: the payment provider's token.
    #[schema(example = "tok_visa")]
    pub token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderItemRequest {
    /// The catalog product.
    pub product_id: Uuid,
    #[schema(example = "ABC-1")]
    pub sku: String,
    /// 1 to 10 000.
    #[schema(example = 2)]
    pub quantity: i64,
    /// Non-negative, in cents.
    #[schema(example = 1990)]
    pub unit_price_cents: i64,
}

impl TryFrom<PlaceOrderRequest> for NewOrder {
    type Error = ApiError;

    fn try_from(req: PlaceOrderRequest) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let currency = errors.check("currency", Currency::parse(&req.currency));
        if req.items.is_empty() || req.items.len() > MAX_LINES {
            errors.push("items", format!("must have between 1 and {MAX_LINES} items"));
        }
        let mut lines = Vec::with_capacity(req.items.len());
        for (i, item) in req.items.iter().enumerate() {
            let sku = errors.check(format!("items[{i}].sku"), Sku::parse(&item.sku));
            let qty = errors.check(format!("items[{i}].quantity"), Quantity::parse(item.quantity));
            let price = errors.check(format!("items[{i}].unit_price_cents"), Cents::parse(item.unit_price_cents));
            if let (Some(sku), Some(qty), Some(price)) = (sku, qty, price)
                && let Some(line) =
                    errors.check(format!("items[{i}]"), OrderLine::new(Some(item.product_id), sku, qty, price))
            {
                lines.push(line);
            }
        }
        let checkout = checkout(&req, &mut errors);
        errors.into_result()?;
        let (Some(currency), Some(checkout)) = (currency, checkout) else {
            return Err(ApiError::invalid(Vec::new()));
        };
        let mut errors = FieldErrors::default();
        let order = errors.check("items", NewOrder::new(req.customer_id, currency, lines, checkout));
        errors.into_result()?;
        order.ok_or_else(|| ApiError::invalid(Vec::new()))
    }
}

fn checkout(req: &PlaceOrderRequest, errors: &mut FieldErrors) -> Option<Checkout> {
    let a = &req.shipping.address;
    let field = |f: &str| format!("shipping.address.{f}");
    let recipient = errors.check(field("recipient"), text(&a.recipient, 120));
    let street = errors.check(field("street"), text(&a.street, 200));
    let number = errors.check(field("number"), text(&a.number, 20));
    let complement = match a.complement.as_deref().map(str::trim) {
        None | Some("") => Some(None),
        Some(c) => errors.check(field("complement"), text(c, 120)).map(Some),
    };
    let district = errors.check(field("district"), text(&a.district, 120));
    let city = errors.check(field("city"), text(&a.city, 120));
    let state = errors.check(field("state"), Uf::parse(&a.state));
    let cep = errors.check(field("cep"), Cep::parse(&a.cep));
    let freight = errors.check("shipping.freight_cents", Cents::parse(req.shipping.freight_cents));
    let payment = match (req.payment.kind.as_str(), req.payment.token.as_deref()) {
        ("card", Some(token)) => errors.check("payment.token", PaymentMethod::card(token)),
        ("card", None) => {
            errors.push("payment.token", "a card payment needs the provider's token");
            None
        }
        ("pix", None) => Some(PaymentMethod::Pix),
        ("pix", Some(_)) => {
            errors.push("payment.token", "a PIX payment takes no token");
            None
        }
        _ => {
            errors.push("payment.type", "must be card or pix");
            None
        }
    };
    let email = errors.check("contact_email", Email::parse(&req.contact_email));
    Some(Checkout {
        shipping: Shipping {
            quote_id: req.shipping.quote_id,
            freight: freight?,
            address: Address {
                recipient: recipient?,
                street: street?,
                number: number?,
                complement: complement?,
                district: district?,
                city: city?,
                state: state?,
                cep: cep?,
            },
        },
        payment: payment?,
        contact_email: email?,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderResponse {
    pub id: Uuid,
    pub customer_id: Uuid,
    /// `PENDING`, `CONFIRMED` or `CANCELLED`.
    #[schema(example = "PENDING")]
    pub status: &'static str,
    /// Why it was cancelled: `out_of_stock`, `payment_declined`,
    /// `payment_failed`, `timeout` or `customer_request`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<&'static str>,
    /// What the saga waits for: `reserving_stock`, `charging`,
    /// `awaiting_pix`, or `done`.
    pub saga_step: &'static str,
    pub currency: &'static str,
    pub freight_cents: i64,
    /// Items plus freight.
    pub total_cents: i64,
    pub items: Vec<OrderItemResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<AddressRequest>,
    /// `card` or `pix`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_code: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderItemResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<Uuid>,
    pub sku: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
}

impl From<&Order> for OrderResponse {
    fn from(o: &Order) -> Self {
        let c = o.checkout.as_ref();
        OrderResponse {
            id: o.id,
            customer_id: o.customer_id,
            status: o.status().as_str(),
            cancel_reason: o.saga.cancel_reason.map(|r| r.as_str()),
            saga_step: o.saga.step.as_str(),
            currency: o.currency.code(),
            freight_cents: o.freight().get(),
            total_cents: o.total.get(),
            shipping_address: c.map(|c| {
                let a = &c.shipping.address;
                AddressRequest {
                    recipient: a.recipient.clone(),
                    street: a.street.clone(),
                    number: a.number.clone(),
                    complement: a.complement.clone(),
                    district: a.district.clone(),
                    city: a.city.clone(),
                    state: a.state.as_str().to_string(),
                    cep: a.cep.as_str().to_string(),
                }
            }),
            payment_method: c.map(|c| match c.payment {
                PaymentMethod::Card { .. } => "card",
                PaymentMethod::Pix => "pix",
            }),
            contact_email: c.map(|c| c.contact_email.as_str().to_string()),
            payment_id: o.saga.payment_id,
            tracking_code: o.saga.tracking_code.clone(),
            items: o
                .lines
                .iter()
                .map(|l| OrderItemResponse {
                    product_id: l.product_id,
                    sku: l.sku.as_str().to_string(),
                    quantity: l.quantity.get(),
                    unit_price_cents: l.unit_price.get(),
                    line_total_cents: l.total.get(),
                })
                .collect(),
            created_at: o.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<OrderResponse>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

/// Place an order. It starts `PENDING`; `OrderPlacedV1` is published and
/// the saga starts (reserve stock, charge, confirm).
#[utoipa::path(
    post, path = "/orders", tag = "orders",
    request_body = PlaceOrderRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "replays the first response for the same key and body"),
        ("x-feira-user-id" = Option<Uuid>, Header, description = "the caller, set by the gateway"),
        ("x-feira-roles" = Option<String>, Header, description = "the caller's roles, set by the gateway"),
        ("x-feira-channel" = Option<String>, Header, description = "`cart` when the cart's checkout places the order; customers place orders only that way"),
    ),
    responses(
        (status = 201, description = "placed", body = OrderResponse, headers(("Location" = String))),
        (status = 403, description = "a customer's order not placed through the cart", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 400, description = "invalid input", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "the same key is still being processed", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "wrong JSON types, or the key was used with another body", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn place_order(
    State(st): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    key: Option<axum::Extension<IdempotencyKey>>,
    body: Result<Json<PlaceOrderRequest>, ApiError>,
) -> Result<Response, ApiError> {
    // Who is asking comes before what they sent: an anonymous caller learns
    // nothing about the body's validity.
    caller.require_user()?;
    let channel = headers.get(platform::http::caller::CHANNEL_HEADER).and_then(|v| v.to_str().ok());
    app::authorize_channel(&caller, channel)?;
    let Json(req) = body?;
    app::authorize_placing(&caller, req.customer_id)?;
    let new = NewOrder::try_from(req)?;
    let key = key.map(|k| k.0.0);
    let order = app::place_order(&st.db, &caller, new, key.as_deref(), &st.timeouts).await?;
    Ok(platform::http::created(format!("/orders/{}", order.id), OrderResponse::from(&order)))
}

/// One order; another customer's order answers 404.
#[utoipa::path(
    get, path = "/orders/{id}", tag = "orders",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "the order", body = OrderResponse),
        (status = 404, description = "no such resource for this caller", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_order(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<OrderResponse>, ApiError> {
    let order = app::get_order(&st.db, &caller, id).await?;
    Ok(Json(OrderResponse::from(&order)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only this customer's orders (default: the caller's; admins: everyone's).
    pub customer_id: Option<Uuid>,
    /// 1 to 100, default 20.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// Orders, newest first, with keyset pagination.
#[utoipa::path(
    get, path = "/orders", tag = "orders",
    params(ListQuery),
    responses((status = 200, description = "a page of orders", body = OrderPage))
)]
pub async fn list_orders(
    State(st): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (orders, next_cursor) = app::list_orders(&st.db, &caller, q.customer_id, q.cursor, q.limit).await?;
    Ok(Json(OrderPage { items: orders.iter().map(OrderResponse::from).collect(), next_cursor }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineResponse {
    pub order_id: Uuid,
    pub status: &'static str,
    pub entries: Vec<TimelineEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    /// `placed`, `reserve_stock`, `charge_payment`, `commit_stock`,
    /// `release_stock`, `refund_payment`, `shipment`, `confirmed` or
    /// `cancelled`.
    pub step: String,
    pub outcome: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

/// Each step of the order's saga with its time and outcome, oldest first.
#[utoipa::path(
    get, path = "/orders/{id}/timeline", tag = "orders",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "the timeline", body = TimelineResponse),
        (status = 404, description = "no such resource for this caller", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_timeline(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<TimelineResponse>, ApiError> {
    let (order, rows) = app::timeline(&st.db, &caller, id).await?;
    Ok(Json(TimelineResponse {
        order_id: order.id,
        status: order.status().as_str(),
        entries: rows.into_iter().map(|r| TimelineEntry { step: r.step, outcome: r.outcome, at: r.at }).collect(),
    }))
}

/// Cancel the order (until it ships): the stock is released and the
/// payment refunded or voided. Cancelling a cancelled order changes nothing.
#[utoipa::path(
    post, path = "/orders/{id}/cancel", tag = "orders",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "the cancelled order", body = OrderResponse),
        (status = 404, description = "no such resource for this caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "the order has already shipped", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel_order(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<OrderResponse>, ApiError> {
    let order = app::cancel_order(&st.db, &caller, id).await?;
    Ok(Json(OrderResponse::from(&order)))
}
