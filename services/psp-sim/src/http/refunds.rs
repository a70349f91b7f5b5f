//! `/v1/refunds`: refund a succeeded charge, in full or in part.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{idempotency_key, json_body, respond};
use crate::domain::Refund;
use crate::{AppState, PspError, app};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_refund))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateRefundRequest {
    /// The charge's id (`ch_...`).
    pub charge: String,
    /// Default: all that is not refunded yet.
    pub amount_cents: Option<i64>,
}

/// Refunds a succeeded charge.
#[utoipa::path(
    post,
    path = "/v1/refunds",
    tag = "refunds",
    params(("Idempotency-Key" = String, Header, description = "required; the same key answers the same refund")),
    request_body = CreateRefundRequest,
    responses(
        (status = 201, description = "the refund", body = Refund),
        (status = 400, description = "charge not succeeded, over-refund, invalid body or idempotency_error"),
        (status = 404, description = "no such charge"),
    )
)]
async fn create_refund(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, PspError> {
    let key = idempotency_key(&headers)?;
    let req: CreateRefundRequest = json_body(&body)?;
    Ok(respond(app::refunds::create_refund(&st.db, &key, req.charge.trim(), req.amount_cents).await?))
}
