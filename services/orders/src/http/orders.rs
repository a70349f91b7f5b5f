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
use crate::domain::{Cents, Currency, MAX_LINES, NewOrder, Order, OrderLine, Quantity, Sku};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(place_order, list_orders)).routes(routes!(get_order))
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
    pub items: Vec<OrderItemRequest>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderItemRequest {
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
                && let Some(line) = errors.check(format!("items[{i}]"), OrderLine::new(sku, qty, price))
            {
                lines.push(line);
            }
        }
        errors.into_result()?;
        let currency = currency.ok_or_else(|| ApiError::invalid(Vec::new()))?;
        let mut errors = FieldErrors::default();
        let order = errors.check("items", NewOrder::new(req.customer_id, currency, lines));
        errors.into_result()?;
        order.ok_or_else(|| ApiError::invalid(Vec::new()))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderResponse {
    pub id: Uuid,
    pub customer_id: Uuid,
    #[schema(example = "PENDING")]
    pub status: &'static str,
    pub currency: &'static str,
    pub total_cents: i64,
    pub items: Vec<OrderItemResponse>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderItemResponse {
    pub sku: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
}

impl From<&Order> for OrderResponse {
    fn from(o: &Order) -> Self {
        OrderResponse {
            id: o.id,
            customer_id: o.customer_id,
            status: o.status.as_str(),
            currency: o.currency.code(),
            total_cents: o.total.get(),
            items: o
                .lines
                .iter()
                .map(|l| OrderItemResponse {
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

/// Place an order. It starts `PENDING`; `OrderPlacedV1` is published.
#[utoipa::path(
    post, path = "/orders", tag = "orders",
    request_body = PlaceOrderRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "replays the first response for the same key and body"),
        ("x-feira-user-id" = Option<Uuid>, Header, description = "the caller, set by the gateway"),
        ("x-feira-roles" = Option<String>, Header, description = "the caller's roles, set by the gateway"),
    ),
    responses(
        (status = 201, description = "placed", body = OrderResponse, headers(("Location" = String))),
        (status = 400, description = "invalid input", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "the same key is still being processed", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "wrong JSON types, or the key was used with another body", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn place_order(
    State(st): State<AppState>,
    caller: Caller,
    key: Option<axum::Extension<IdempotencyKey>>,
    body: Result<Json<PlaceOrderRequest>, ApiError>,
) -> Result<Response, ApiError> {
    // Who is asking comes before what they sent: an anonymous caller learns
    // nothing about the body's validity.
    caller.require_user()?;
    let Json(req) = body?;
    app::authorize_placing(&caller, req.customer_id)?;
    let new = NewOrder::try_from(req)?;
    let key = key.map(|k| k.0.0);
    let order = app::place_order(&st.db, &caller, new, key.as_deref()).await?;
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
