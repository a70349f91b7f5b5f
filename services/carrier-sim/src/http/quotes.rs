//! `/v1/quotes`: freight prices and days.

use axum::body::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::json_body;
use crate::domain::{Cep, QuoteOption, Weight, quote};
use crate::{AppState, CarrierError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_quote))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct QuoteRequest {
    /// 8 digits, one hyphen allowed (`01310-100`).
    pub origin_cep: String,
    pub destination_cep: String,
    /// 1 to 30000.
    pub weight_grams: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuoteResponse {
    /// PAC first, then SEDEX (dearer and faster).
    pub options: Vec<QuoteOption>,
}

/// PAC and SEDEX prices and business days between two CEPs.
#[utoipa::path(
    post,
    path = "/v1/quotes",
    tag = "quotes",
    request_body = QuoteRequest,
    responses((status = 200, description = "the options", body = QuoteResponse), (status = 400, description = "invalid_request_error"))
)]
async fn create_quote(body: Bytes) -> Result<axum::Json<QuoteResponse>, CarrierError> {
    let req: QuoteRequest = json_body(&body)?;
    let origin = Cep::parse(&req.origin_cep)?;
    let destination = Cep::parse(&req.destination_cep)?;
    let weight = Weight::grams(req.weight_grams)?;
    Ok(axum::Json(QuoteResponse { options: quote(origin, destination, weight) }))
}
