//! `/shipments`: the shipments of confirmed orders, for their customer and
//! for admins.

use axum::extract::{Path, Query, State};
use contracts::orders::AddressV1;
use platform::http::{Caller, Json};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::CallerHeaders;
use crate::domain::Shipment;
use crate::{AppState, ShippingError, app};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_shipments)).routes(routes!(get_shipment))
}

/// A shipment of a confirmed order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShipmentResponse {
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    /// The quote the order carried.
    pub quote_id: Option<Uuid>,
    pub carrier: &'static str,
    /// `PAC` or `SEDEX`.
    pub service: &'static str,
    pub weight_grams: i64,
    pub origin_cep: String,
    pub destination_cep: String,
    pub address: AddressV1,
    /// `booking` (waiting for the carrier), `scheduled`, `cancelled` (never
    /// booked), `cancel_requested` (booked, then the order was cancelled:
    /// cancelled with the carrier by an operator) or `rejected` (the carrier
    /// refused the parcel).
    #[schema(example = "scheduled")]
    pub status: &'static str,
    #[schema(example = "AA123456789BR")]
    pub tracking_code: Option<String>,
    /// `YYYY-MM-DD`.
    #[schema(example = "2026-11-30")]
    pub estimated_delivery: Option<String>,
    /// Booking attempts so far (more than one while the carrier was down).
    pub booking_attempts: i32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub cancelled_at: Option<OffsetDateTime>,
}

impl From<&Shipment> for ShipmentResponse {
    fn from(s: &Shipment) -> Self {
        ShipmentResponse {
            id: s.id,
            order_id: s.order_id,
            customer_id: s.customer_id,
            quote_id: s.quote_id,
            carrier: crate::domain::CARRIER,
            service: s.service.as_str(),
            weight_grams: s.weight_grams,
            origin_cep: s.origin_cep.clone(),
            destination_cep: s.destination_cep.clone(),
            address: s.address.clone(),
            status: s.status.as_str(),
            tracking_code: s.tracking_code.clone(),
            estimated_delivery: s.estimated_delivery.map(|d| d.to_string()),
            booking_attempts: s.attempts,
            created_at: s.created_at,
            updated_at: s.updated_at,
            scheduled_at: s.scheduled_at,
            cancelled_at: s.cancelled_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShipmentPage {
    pub items: Vec<ShipmentResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

/// One shipment; another customer's shipment answers 404.
#[utoipa::path(
    get, path = "/shipments/{id}", tag = "shipments",
    params(("id" = Uuid, Path), CallerHeaders),
    responses(
        (status = 200, description = "the shipment", body = ShipmentResponse),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such shipment for this caller", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_shipment(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<ShipmentResponse>, ShippingError> {
    let s = app::get_shipment(&st.db_read, &caller, id).await?;
    Ok(Json(ShipmentResponse::from(&s)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only the shipment of this order.
    pub order_id: Option<Uuid>,
    /// 1 to 100, default 20.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// The caller's shipments (every shipment for admins), newest first.
#[utoipa::path(
    get, path = "/shipments", tag = "shipments",
    params(ListQuery, CallerHeaders),
    responses(
        (status = 200, description = "a page of shipments", body = ShipmentPage),
        (status = 401, description = "no caller", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_shipments(
    State(st): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<ShipmentPage>, ShippingError> {
    let (items, next_cursor) = app::list_shipments(&st.db_read, &caller, q.order_id, q.cursor, q.limit).await?;
    Ok(Json(ShipmentPage { items: items.iter().map(ShipmentResponse::from).collect(), next_cursor }))
}
