//! `/products/{id}/stock`: stock administration, for the product's seller
//! and admins only (anyone else gets 404, as if the product did not exist).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use platform::ApiError;
use platform::error::FieldErrors;
use platform::http::{Caller, Json};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::CallerHeaders;
use crate::AppState;
use crate::app;
use crate::domain::{Hold, OnHand, StockLevel};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_stock, set_stock))
}

/// The units on hand.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockRequest {
    /// 0 to 10^9, and at least the units reserved for orders.
    #[schema(example = 25)]
    pub on_hand: i64,
}

impl TryFrom<StockRequest> for OnHand {
    type Error = ApiError;

    fn try_from(req: StockRequest) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let on_hand = errors.check("on_hand", OnHand::parse(req.on_hand));
        errors.into_result()?;
        on_hand.ok_or_else(|| ApiError::invalid(Vec::new()))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StockResponse {
    pub product_id: Uuid,
    pub on_hand: i64,
    /// Held by reservations not yet committed, released or expired.
    pub reserved: i64,
    /// `on_hand - reserved`, never negative.
    pub available: i64,
    /// The reservations holding units, soonest to expire first.
    pub reservations: Vec<HoldResponse>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HoldResponse {
    pub order_id: Uuid,
    pub quantity: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

impl StockResponse {
    fn of(level: &StockLevel, holds: &[Hold]) -> Self {
        StockResponse {
            product_id: level.product_id,
            on_hand: level.on_hand,
            reserved: level.reserved,
            available: level.available(),
            reservations: holds
                .iter()
                .map(|h| HoldResponse { order_id: h.order_id, quantity: h.quantity, expires_at: h.expires_at })
                .collect(),
            updated_at: level.updated_at,
        }
    }
}

/// The product's stock and the reservations holding part of it.
#[utoipa::path(
    get, path = "/products/{id}/stock", tag = "stock",
    params(("id" = Uuid, Path), CallerHeaders),
    responses(
        (status = 200, description = "the stock", body = StockResponse),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "the owner lacks the seller role", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such product for this caller", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_stock(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<StockResponse>, ApiError> {
    let (level, holds) = app::get_stock(&st.db, &caller, id).await?;
    Ok(Json(StockResponse::of(&level, &holds)))
}

/// Sets the units on hand; reserved units stay reserved.
#[utoipa::path(
    put, path = "/products/{id}/stock", tag = "stock",
    request_body = StockRequest,
    params(("id" = Uuid, Path), CallerHeaders),
    responses(
        (status = 200, description = "the stock as it is now", body = StockResponse),
        (status = 400, description = "invalid input", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "the owner lacks the seller role", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such product for this caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "below the units reserved for orders", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "wrong JSON types", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn set_stock(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: Result<Json<StockRequest>, ApiError>,
) -> Result<Response, ApiError> {
    caller.require_user()?;
    let Json(req) = body?;
    let on_hand = OnHand::try_from(req)?;
    let (level, holds) = app::set_stock(&st.db, &st.cache, &caller, id, on_hand).await?;
    Ok(Json(StockResponse::of(&level, &holds)).into_response())
}
