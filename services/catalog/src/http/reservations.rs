//! `/reservations`: the saga's stock operations, for operators (admins).
//!
//! They do what the `ReserveStockV1`, `ReleaseStockV1` and `CommitStockV1`
//! commands do, in the same transactions, and announce the same events; the
//! answer is the HTTP response instead of a reply message.

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
use crate::app::{self, Reserve, Settle};
use crate::domain::{MAX_LINES, Quantity, Reservation, ReservationLine, ReservationRequest};
use crate::{AppState, CatalogError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(reserve_stock))
        .routes(routes!(get_reservation))
        .routes(routes!(release_stock))
        .routes(routes!(commit_stock))
}

/// Reserve every line for the order, or none.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    pub order_id: Uuid,
    /// 1 to 100 lines; lines of one product are added up.
    pub lines: Vec<LineRequest>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    pub product_id: Uuid,
    /// 1 to 10^6.
    #[schema(example = 2)]
    pub quantity: i64,
}

impl TryFrom<ReserveRequest> for ReservationRequest {
    type Error = ApiError;

    fn try_from(req: ReserveRequest) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        if req.lines.is_empty() || req.lines.len() > MAX_LINES {
            errors.push("lines", format!("must have between 1 and {MAX_LINES} lines"));
        }
        let lines: Vec<ReservationLine> = req
            .lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let quantity = errors.check(format!("lines[{i}].quantity"), Quantity::parse(l.quantity))?;
                Some(ReservationLine { product_id: l.product_id, quantity })
            })
            .collect();
        errors.into_result()?;
        let mut errors = FieldErrors::default();
        let request = errors.check("lines", ReservationRequest::new(req.order_id, lines));
        errors.into_result()?;
        request.ok_or_else(|| ApiError::invalid(Vec::new()))
    }
}

/// An order's reservation: its outcome and what became of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationResponse {
    pub order_id: Uuid,
    /// `reserved`, `rejected`, `released`, `committed` or `expired`.
    #[schema(example = "reserved")]
    pub status: &'static str,
    /// Why it was rejected (`out_of_stock`, `unknown_product`) or released.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The lines, one per product.
    pub lines: Vec<ReservationLineResponse>,
    /// The lines that could not be served, for a rejection.
    pub short_lines: Vec<ShortLineResponse>,
    /// When held stock goes back; absent for a rejection.
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationLineResponse {
    pub product_id: Uuid,
    pub quantity: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShortLineResponse {
    pub product_id: Uuid,
    pub requested: i64,
    /// 0 for an unknown, inactive or deleted product.
    pub available: i64,
}

impl From<&Reservation> for ReservationResponse {
    fn from(r: &Reservation) -> Self {
        ReservationResponse {
            order_id: r.order_id,
            status: r.status.as_str(),
            reason: r.reason.clone(),
            lines: r
                .lines
                .iter()
                .map(|l| ReservationLineResponse { product_id: l.product_id, quantity: l.quantity })
                .collect(),
            short_lines: r
                .short_lines()
                .iter()
                .map(|s| ShortLineResponse { product_id: s.product_id, requested: s.requested, available: s.available })
                .collect(),
            expires_at: r.expires_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Reserves stock for an order, all lines or none, as `ReserveStockV1` does.
/// The first request for an order decides (201, `reserved` or `rejected`);
/// the same request again answers that outcome (200) and changes nothing.
#[utoipa::path(
    post, path = "/reservations", tag = "reservations",
    request_body = ReserveRequest,
    params(CallerHeaders),
    responses(
        (status = 201, description = "decided now: reserved, or rejected with the short lines", body = ReservationResponse, headers(("Location" = String, description = "the reservation's URL"))),
        (status = 200, description = "the order's reservation was already decided", body = ReservationResponse),
        (status = 400, description = "invalid input", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "not an admin", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "the order's reservation was decided for other lines", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "wrong JSON types", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn reserve_stock(
    State(st): State<AppState>,
    caller: Caller,
    body: Result<Json<ReserveRequest>, ApiError>,
) -> Result<Response, ApiError> {
    app::authorize_operator(&caller)?;
    let Json(req) = body?;
    let request = ReservationRequest::try_from(req)?;
    match app::reserve_for_operator(&st.db, &st.cache, &caller, &request, st.reservation_ttl).await? {
        Reserve::Decided(r) => {
            Ok(platform::http::created(format!("/reservations/{}", r.order_id), ReservationResponse::from(&r)))
        }
        Reserve::Existing(r) if r.asks_for(&request) => Ok(Json(ReservationResponse::from(&r)).into_response()),
        Reserve::Existing(_) => Err(CatalogError::Conflict(
            "this order's reservation was decided for other lines; it stands as decided".into(),
        )
        .into()),
    }
}

/// An order's reservation.
#[utoipa::path(
    get, path = "/reservations/{order_id}", tag = "reservations",
    params(("order_id" = Uuid, Path), CallerHeaders),
    responses(
        (status = 200, description = "the reservation", body = ReservationResponse),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "not an admin", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "the order has no reservation", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_reservation(
    State(st): State<AppState>,
    caller: Caller,
    Path(order_id): Path<Uuid>,
) -> Result<Json<ReservationResponse>, ApiError> {
    let r = app::get_reservation(&st.db, &caller, order_id).await?;
    Ok(Json(ReservationResponse::from(&r)))
}

/// Gives the order's held stock back, as `ReleaseStockV1` does. Releasing
/// again (or after expiry) changes nothing.
#[utoipa::path(
    post, path = "/reservations/{order_id}/release", tag = "reservations",
    params(("order_id" = Uuid, Path), CallerHeaders),
    responses(
        (status = 200, description = "released (or it had been, or had expired)", body = ReservationResponse),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "not an admin", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "the order has no reservation", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "nothing is held: rejected, or already sold", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn release_stock(
    State(st): State<AppState>,
    caller: Caller,
    Path(order_id): Path<Uuid>,
) -> Result<Json<ReservationResponse>, ApiError> {
    answer(app::release_for_operator(&st.db, &st.cache, &caller, order_id).await?)
}

/// Sells the order's held stock, as `CommitStockV1` does: on hand and
/// reserved both drop. Committing again changes nothing; stock that was
/// released or expired is not sold.
#[utoipa::path(
    post, path = "/reservations/{order_id}/commit", tag = "reservations",
    params(("order_id" = Uuid, Path), CallerHeaders),
    responses(
        (status = 200, description = "committed (or it had been)", body = ReservationResponse),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "not an admin", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "the order has no reservation", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "nothing is held: rejected, released or expired", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn commit_stock(
    State(st): State<AppState>,
    caller: Caller,
    Path(order_id): Path<Uuid>,
) -> Result<Json<ReservationResponse>, ApiError> {
    answer(app::commit_for_operator(&st.db, &st.cache, &caller, order_id).await?)
}

fn answer(settled: Settle) -> Result<Json<ReservationResponse>, ApiError> {
    match settled {
        Settle::Applied(r) | Settle::Repeated(r) => Ok(Json(ReservationResponse::from(&r))),
        Settle::Refused(r) => Err(ApiError::new(
            platform::ErrorKind::Conflict,
            format!("the order's reservation is {}: nothing is held", r.status.as_str()),
        )),
        Settle::Unknown => Err(CatalogError::NotFound("reservation").into()),
    }
}
