//! `/admin/pix`: what the customer's bank app would do (pay a PIX code), and
//! what the callbacks did, for tests and demos.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::Charge;
use crate::repo::deliveries::Delivery;
use crate::{AppState, PspError, app};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(pay_pix)).routes(routes!(list_deliveries))
}

/// The customer pays the pending PIX charge: it becomes `succeeded` and its
/// `charge.succeeded` callback is sent in the background (202 at once).
#[utoipa::path(
    post,
    path = "/admin/pix/{charge_id}/pay",
    tag = "admin",
    params(("charge_id" = String, Path)),
    responses(
        (status = 202, description = "paid; the callback is on its way", body = Charge),
        (status = 400, description = "not a pending PIX charge, or expired"),
        (status = 404, description = "no such charge"),
    )
)]
async fn pay_pix(
    State(st): State<AppState>,
    Path(charge_id): Path<String>,
) -> Result<(StatusCode, axum::Json<Charge>), PspError> {
    let charge = app::pix::pay(&st, &charge_id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(charge)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Oldest first.
    pub data: Vec<Delivery>,
}

/// Every attempt to deliver the charge's PIX callback.
#[utoipa::path(
    get,
    path = "/admin/pix/{charge_id}/deliveries",
    tag = "admin",
    params(("charge_id" = String, Path)),
    responses((status = 200, description = "the callback attempts", body = DeliveryList), (status = 404, description = "no such charge"))
)]
async fn list_deliveries(
    State(st): State<AppState>,
    Path(charge_id): Path<String>,
) -> Result<axum::Json<DeliveryList>, PspError> {
    Ok(axum::Json(DeliveryList { data: app::pix::deliveries(&st.db, &charge_id).await? }))
}
