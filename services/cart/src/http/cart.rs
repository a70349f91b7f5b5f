//! `/cart`: read the cart, set or remove an item, empty it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use platform::ApiError;
use platform::error::FieldErrors;
use platform::http::{Caller, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{CallerHeaders, unprocessable};
use crate::AppState;
use crate::app;
use crate::domain::{CartView, Quantity};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_cart, clear_cart)).routes(routes!(set_item, remove_item))
}

/// The cart, priced.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartResponse {
    pub items: Vec<CartItemResponse>,
    /// The cart's one currency; `null` while it is empty.
    #[schema(example = "BRL")]
    pub currency: Option<&'static str>,
    /// The sum of the lines.
    pub items_cents: i64,
    /// True when the catalog could not be asked: some prices are the last known ones.
    pub price_stale: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CartItemResponse {
    pub product_id: Uuid,
    #[schema(example = "ABC-1")]
    pub sku: String,
    pub title: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
    /// Whether it can be bought now (sold, in the cart's currency, in stock);
    /// absent when the catalog could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available: Option<bool>,
}

impl From<CartView> for CartResponse {
    fn from(v: CartView) -> Self {
        CartResponse {
            items: v
                .lines
                .into_iter()
                .map(|l| CartItemResponse {
                    product_id: l.product_id,
                    sku: l.snapshot.sku,
                    title: l.snapshot.title,
                    quantity: l.quantity.get(),
                    unit_price_cents: l.snapshot.unit_price_cents.get(),
                    line_total_cents: l.line_total.get(),
                    available: l.available,
                })
                .collect(),
            currency: v.currency.map(|c| c.code()),
            items_cents: v.items_total.get(),
            price_stale: v.price_stale,
        }
    }
}

/// The quantity of one product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetItemRequest {
    /// 1 to 99.
    #[schema(example = 2)]
    pub quantity: Option<i64>,
}

/// The caller's cart, priced from the catalog now.
#[utoipa::path(
    get, path = "/cart", tag = "cart",
    params(CallerHeaders),
    responses(
        (status = 200, description = "the cart (empty when there is none)", body = CartResponse),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the cart store is unavailable", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_cart(State(st): State<AppState>, caller: Caller) -> Result<Json<CartResponse>, ApiError> {
    let customer = caller.require_user()?;
    Ok(Json(app::view_cart(&st, customer).await?.into()))
}

/// Empties the caller's cart.
#[utoipa::path(
    delete, path = "/cart", tag = "cart",
    params(CallerHeaders),
    responses(
        (status = 204, description = "emptied"),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn clear_cart(State(st): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    let customer = caller.require_user()?;
    app::clear_cart(&st, customer).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the quantity of a product in the caller's cart (adds it when absent).
#[utoipa::path(
    put, path = "/cart/items/{product_id}", tag = "cart",
    request_body = SetItemRequest,
    params(("product_id" = Uuid, Path), CallerHeaders),
    responses(
        (status = 200, description = "the cart", body = CartResponse),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such product", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid quantity, a product not sold, another currency, or a full cart", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the catalog or the cart store is unavailable (see Retry-After)", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn set_item(
    State(st): State<AppState>,
    caller: Caller,
    Path(product_id): Path<Uuid>,
    body: Result<Json<SetItemRequest>, ApiError>,
) -> Result<Json<CartResponse>, ApiError> {
    let customer = caller.require_user()?;
    let Json(req) = body?;
    let mut errors = FieldErrors::default();
    let quantity = match req.quantity {
        Some(n) => errors.check("quantity", Quantity::parse(n)),
        None => {
            errors.push("quantity", "is required");
            None
        }
    };
    unprocessable(errors)?;
    let quantity = quantity.ok_or_else(|| ApiError::invalid(Vec::new()))?;
    Ok(Json(app::set_item(&st, customer, product_id, quantity).await?.into()))
}

/// Removes a product from the caller's cart (204 also when it was not there).
#[utoipa::path(
    delete, path = "/cart/items/{product_id}", tag = "cart",
    params(("product_id" = Uuid, Path), CallerHeaders),
    responses(
        (status = 204, description = "removed"),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn remove_item(
    State(st): State<AppState>,
    caller: Caller,
    Path(product_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let customer = caller.require_user()?;
    app::remove_item(&st, customer, product_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
