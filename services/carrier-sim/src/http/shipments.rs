//! `/v1/shipments`: book parcels, read bookings.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{REPLAYED_HEADER, idempotency_key, json_body};
use crate::domain::{NewShipment, Shipment};
use crate::{AppState, CarrierError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_shipment, list_shipments)).routes(routes!(get_shipment))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateShipmentRequest {
    /// `PAC` or `SEDEX`.
    pub service: String,
    pub origin_cep: String,
    pub destination_cep: String,
    pub weight_grams: i64,
    /// The shipper's reference (feira's order id); required.
    pub reference: String,
}

impl TryFrom<CreateShipmentRequest> for NewShipment {
    type Error = crate::domain::Invalid;

    fn try_from(r: CreateShipmentRequest) -> Result<Self, Self::Error> {
        NewShipment::parse(&r.service, &r.origin_cep, &r.destination_cep, r.weight_grams, &r.reference)
    }
}

/// Books a parcel; the same `Idempotency-Key` and body answer the same
/// shipment (marked `Idempotent-Replayed: true`).
#[utoipa::path(
    post,
    path = "/v1/shipments",
    tag = "shipments",
    params(("Idempotency-Key" = String, Header, description = "required")),
    request_body = CreateShipmentRequest,
    responses(
        (status = 201, description = "the shipment", body = Shipment),
        (status = 400, description = "invalid_request_error or idempotency_error"),
    )
)]
async fn create_shipment(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, CarrierError> {
    let key = idempotency_key(&headers)?;
    let req: CreateShipmentRequest = json_body(&body)?;
    let new = NewShipment::try_from(req)?;
    let booked = st.bookings.book(&key, &new)?;
    let mut res = (StatusCode::CREATED, axum::Json(booked.shipment)).into_response();
    if booked.replayed {
        res.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(res)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only the shipments of this reference.
    pub reference: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShipmentList {
    /// Oldest first (at most 1000).
    pub data: Vec<Shipment>,
}

/// Booked shipments (of one `reference`), oldest first.
#[utoipa::path(get, path = "/v1/shipments", tag = "shipments", params(ListQuery), responses((status = 200, description = "the shipments", body = ShipmentList)))]
async fn list_shipments(State(st): State<AppState>, Query(q): Query<ListQuery>) -> axum::Json<ShipmentList> {
    axum::Json(ShipmentList { data: st.bookings.list(q.reference.as_deref()) })
}

/// One shipment.
#[utoipa::path(
    get,
    path = "/v1/shipments/{id}",
    tag = "shipments",
    params(("id" = String, Path, description = "sh_...")),
    responses((status = 200, description = "the shipment", body = Shipment), (status = 404, description = "no such shipment"))
)]
async fn get_shipment(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Shipment>, CarrierError> {
    st.bookings.get(&id).map(axum::Json).ok_or(CarrierError::NoSuchShipment(id))
}
