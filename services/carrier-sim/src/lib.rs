//! carrier-sim: a Correios-like carrier, simulated for local runs and tests.
//! It is an outside party to feira (shipping talks to it over HTTP, behind a
//! circuit breaker, exactly as it would to a real carrier), served as a real
//! HTTP server with faults that can be switched on while it runs.
//!
//! - `POST /v1/quotes`: PAC and SEDEX prices and days, deterministic from
//!   the CEP regions (first digit) and the weight.
//! - `POST /v1/shipments` (`Idempotency-Key` required): books a parcel and
//!   gives its tracking code; the same key books once.
//! - Faults (`/admin/faults`, see [`platform::http::faults`]) make `/v1/*`
//!   slow, failing, hanging, or down.
//!
//! Stateless: no database (`migrator: None`); bookings live in memory for
//! the life of the process, as a stand-in for the carrier's own systems.
//! Errors use the provider shape `{"error":{"type","message"}}` inside an
//! RFC 9457 problem document.
//!
//! # Layout
//! - `http/`: `/v1/quotes` and `/v1/shipments` routes and DTOs.
//! - `domain/`: CEPs, weights, freight prices and days, tracking codes,
//!   business-day estimates (no I/O).
//! - `app/`: the in-memory booking book with its idempotency keys (there is
//!   no `repo/`: nothing is stored in a database).

pub mod app;
pub mod domain;
pub mod http;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use platform::http::faults::{self, Faults, provider_error};
use platform::service::{RunFuture, Service, ServiceSpec};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::bookings::Bookings;

pub const SPEC: ServiceSpec =
    ServiceSpec { name: "carrier-sim", default_port: 8202, migrator: None, openapi, vars: &[], consumers: &[], run };

#[derive(Clone, Default)]
pub struct AppState {
    pub bookings: Bookings,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "feira carrier-sim",
    description = "A Correios-like carrier simulator: PAC/SEDEX freight quotes, shipment booking with tracking codes, \
                   switchable faults."
))]
struct ApiDoc;

fn api(faults: Faults) -> OpenApiRouter<AppState> {
    let v1 = OpenApiRouter::new()
        .merge(http::quotes::router())
        .merge(http::shipments::router())
        .layer(axum::middleware::from_fn_with_state(faults.clone(), faults::layer));
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(v1).merge(faults::admin_router(faults))
}

/// The OpenAPI document alone (`feira openapi carrier-sim`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api(Faults::new()).split_for_parts().1
}

fn run(svc: Service) -> RunFuture {
    Box::pin(async move {
        let faults = Faults::new().stop_hanging_on(svc.shutdown.clone());
        let (api, openapi) = api(faults).split_for_parts();
        let api: Router = api.with_state(AppState::default());
        svc.serve(api, openapi).await
    })
}

/// What can go wrong in carrier-sim, and how the carrier answers it.
#[derive(Debug, thiserror::Error)]
pub enum CarrierError {
    #[error(transparent)]
    Invalid(#[from] domain::Invalid),
    #[error("{0}")]
    Idempotency(String),
    #[error("no such shipment: {0}")]
    NoSuchShipment(String),
    /// A key points at a shipment that is not there (a defect).
    #[error("internal error")]
    Lost,
}

impl CarrierError {
    pub fn status(&self) -> StatusCode {
        match self {
            CarrierError::Invalid(_) | CarrierError::Idempotency(_) => StatusCode::BAD_REQUEST,
            CarrierError::NoSuchShipment(_) => StatusCode::NOT_FOUND,
            CarrierError::Lost => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The provider's error `type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            CarrierError::Invalid(_) | CarrierError::NoSuchShipment(_) => "invalid_request_error",
            CarrierError::Idempotency(_) => "idempotency_error",
            CarrierError::Lost => "api_error",
        }
    }
}

impl IntoResponse for CarrierError {
    fn into_response(self) -> Response {
        if matches!(self, CarrierError::Lost) {
            tracing::error!("an idempotency key points at no shipment");
        }
        provider_error(self.status(), self.error_type(), self.to_string())
    }
}
