//! `/shipping/quotes`: freight quotes, asked before checkout and checked at
//! checkout.

use axum::extract::{Path, State};
use axum::response::Response;
use platform::ApiError;
use platform::error::FieldErrors;
use platform::http::Json;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::{self, CarrierService, Cep, Parcel, Quote, QuoteRequest};
use crate::{AppState, ShippingError, app};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_quote)).routes(routes!(get_quote))
}

/// What to quote: where to, what it weighs, which service.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequestDto {
    /// Eight digits, with or without the hyphen.
    #[schema(example = "01310-100")]
    pub destination_cep: String,
    /// At least one; the parcel weighs their sum (at most 30 kg).
    pub items: Vec<QuoteItemDto>,
    /// `PAC` (default) or `SEDEX`.
    #[schema(example = "PAC")]
    pub service: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteItemDto {
    /// Greater than 0.
    #[schema(example = 2)]
    pub quantity: i64,
    /// Weight of one unit, greater than 0.
    #[schema(example = 350)]
    pub weight_grams: i64,
}

impl TryFrom<QuoteRequestDto> for QuoteRequest {
    type Error = ApiError;

    fn try_from(req: QuoteRequestDto) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let destination = errors.check("destination_cep", Cep::parse(&req.destination_cep));
        let service = match req.service.as_deref() {
            None => Some(CarrierService::Pac),
            Some(s) => errors.check("service", CarrierService::parse(s)),
        };
        let mut parcels = Vec::with_capacity(req.items.len());
        for (i, item) in req.items.iter().enumerate() {
            let quantity = errors.check(format!("items[{i}].quantity"), domain::check_quantity(item.quantity));
            let weight = errors.check(format!("items[{i}].weight_grams"), domain::check_weight(item.weight_grams));
            if let (Some(quantity), Some(weight_grams)) = (quantity, weight) {
                parcels.push(Parcel { quantity, weight_grams });
            }
        }
        let weight =
            if parcels.len() == req.items.len() { errors.check("items", domain::total_weight(&parcels)) } else { None };
        errors.into_result()?;
        match (destination, service, weight) {
            (Some(destination), Some(service), Some(weight_grams)) => {
                Ok(QuoteRequest { destination, service, weight_grams })
            }
            _ => Err(ApiError::invalid(Vec::new())),
        }
    }
}

/// A freight quote; the order refers to it by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuoteResponse {
    pub id: Uuid,
    #[schema(example = "01310100")]
    pub origin_cep: String,
    #[schema(example = "20040002")]
    pub destination_cep: String,
    /// `PAC` or `SEDEX`.
    pub service: &'static str,
    pub price_cents: i64,
    #[schema(example = "BRL")]
    pub currency: String,
    /// Working days.
    pub delivery_days: i32,
    /// The parcel's total weight.
    pub weight_grams: i64,
    /// `carrier`: the carrier's price; `fallback`: the carrier could not be
    /// asked and the price comes from the fallback table.
    #[schema(example = "carrier")]
    pub source: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// After this, `GET` answers 410 and the customer asks again.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

impl From<&Quote> for QuoteResponse {
    fn from(q: &Quote) -> Self {
        QuoteResponse {
            id: q.id,
            origin_cep: q.origin_cep.clone(),
            destination_cep: q.destination_cep.clone(),
            service: q.service.as_str(),
            price_cents: q.price_cents,
            currency: q.currency.clone(),
            delivery_days: q.delivery_days,
            weight_grams: q.weight_grams,
            source: q.source.as_str(),
            created_at: q.created_at,
            expires_at: q.expires_at,
        }
    }
}

/// Quotes a parcel (anonymous callers too). When the carrier is down, slow
/// or its circuit breaker open, the price comes from the fallback table
/// (`source: fallback`) instead of failing.
#[utoipa::path(
    post, path = "/shipping/quotes", tag = "quotes",
    request_body = QuoteRequestDto,
    responses(
        (status = 201, description = "quoted", body = QuoteResponse, headers(("Location" = String, description = "the quote's URL"))),
        (status = 400, description = "invalid input (see `errors`)", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "wrong JSON types, or the carrier refused the parcel", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_quote(
    State(st): State<AppState>,
    body: Result<Json<QuoteRequestDto>, ApiError>,
) -> Result<Response, ShippingError> {
    let Json(req) = body?;
    let req = QuoteRequest::try_from(req)?;
    let quote = app::create_quote(&st, req).await?;
    Ok(platform::http::created(format!("/shipping/quotes/{}", quote.id), QuoteResponse::from(&quote)))
}

/// A quote, while it is valid (the cart checks the order's quote this way).
#[utoipa::path(
    get, path = "/shipping/quotes/{id}", tag = "quotes",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "the quote", body = QuoteResponse),
        (status = 404, description = "no such quote", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 410, description = "the quote expired", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_quote(State(st): State<AppState>, Path(id): Path<Uuid>) -> Result<Json<QuoteResponse>, ShippingError> {
    let quote = app::get_quote(&st.db, id).await?;
    Ok(Json(QuoteResponse::from(&quote)))
}
