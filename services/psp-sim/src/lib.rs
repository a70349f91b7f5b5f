//! psp-sim: a Stripe-like payment provider, simulated for local runs and
//! tests. It is an outside party to feira (payments talks to it over HTTP
//! exactly as it would to a real provider), served as a real HTTP server with
//! faults that can be switched on while it runs.
//!
//! - Card charges succeed or fail at once by test token (`tok_visa`,
//!   `tok_chargeDeclined`, `tok_chargeDeclinedInsufficientFunds`).
//! - PIX charges stay `pending` until `POST /admin/pix/{id}/pay` (the
//!   customer paying in the bank app); the provider then posts a signed
//!   `charge.succeeded` callback to the charge's `notify_url`, with retries.
//! - `Idempotency-Key` is required on every POST: the same key and body
//!   answer the first answer again, a different body is refused, and ten
//!   concurrent requests with one key make one charge (a unique key row
//!   claimed in the charge's transaction).
//! - Faults (`/admin/faults`, see [`platform::http::faults`]) make `/v1/*`
//!   slow, failing, hanging, or down.
//!
//! Errors use the provider's shape, `{"error":{"type","message"}}` with
//! `type` one of `invalid_request_error`, `idempotency_error`, `api_error`,
//! inside an RFC 9457 problem document.
//!
//! # Layout
//! - `http/`: `/v1/charges`, `/v1/refunds`, `/admin/pix` routes and DTOs.
//! - `domain/`: charges and card-token outcomes, PIX codes, refund limits,
//!   callback signatures (no I/O).
//! - `app/`: use cases, the idempotency claim, the callback sender.
//! - `repo/`: SQL (ledger, refunds, idempotency keys, callback attempts).
//! - `migrations/`: the simulator's schema.

pub mod app;
pub mod domain;
pub mod http;
pub mod repo;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use platform::config::Var;
use platform::http::faults::{self, Faults, provider_error};
use platform::service::{RunFuture, Service, ServiceSpec};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const WEBHOOK_SECRET_VAR: &str = "FEIRA_PSP_SIM_WEBHOOK_SECRET";
pub const DEFAULT_WEBHOOK_SECRET: &str = "whsec_feira_local";

pub const SPEC: ServiceSpec = ServiceSpec {
    name: "psp-sim",
    default_port: 8201,
    migrator: Some(&MIGRATOR),
    openapi,
    vars: &[Var {
        name: WEBHOOK_SECRET_VAR,
        default: DEFAULT_WEBHOOK_SECRET,
        help: "secret psp-sim signs its PIX callbacks with (header Psp-Signature, HMAC-SHA256)",
    }],
    consumers: &[],
    run,
};

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    /// Sends PIX callbacks.
    pub http: reqwest::Client,
    pub webhook_secret: Arc<str>,
    pub shutdown: CancellationToken,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "feira psp-sim",
    description = "A Stripe-like payment provider simulator: card and PIX charges, refunds, signed PIX callbacks, \
                   switchable faults."
))]
struct ApiDoc;

fn api(faults: Faults) -> OpenApiRouter<AppState> {
    let v1 = OpenApiRouter::new()
        .merge(http::charges::router())
        .merge(http::refunds::router())
        .layer(axum::middleware::from_fn_with_state(faults.clone(), faults::layer));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(v1)
        .merge(http::pix::router())
        .merge(faults::admin_router(faults))
}

/// The OpenAPI document alone (`feira openapi psp-sim`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api(Faults::new()).split_for_parts().1
}

fn run(svc: Service) -> RunFuture {
    Box::pin(async move {
        let secret = svc.config.var(WEBHOOK_SECRET_VAR).unwrap_or(DEFAULT_WEBHOOK_SECRET);
        let state = AppState {
            db: svc.db.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            webhook_secret: Arc::from(secret),
            shutdown: svc.shutdown.clone(),
        };
        let faults = Faults::new().stop_hanging_on(svc.shutdown.clone());
        let (api, openapi) = api(faults).split_for_parts();
        let api: Router = api.with_state(state);
        svc.serve(api, openapi).await
    })
}

/// What can go wrong in psp-sim, and how the provider answers it.
#[derive(Debug, thiserror::Error)]
pub enum PspError {
    #[error(transparent)]
    Invalid(#[from] domain::Invalid),
    #[error("{0}")]
    Idempotency(String),
    #[error("no such charge: {0}")]
    NoSuchCharge(String),
    #[error("a request with this Idempotency-Key is still being processed")]
    InProgress,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl PspError {
    pub fn status(&self) -> StatusCode {
        match self {
            PspError::Invalid(_) | PspError::Idempotency(_) => StatusCode::BAD_REQUEST,
            PspError::NoSuchCharge(_) => StatusCode::NOT_FOUND,
            PspError::InProgress => StatusCode::CONFLICT,
            PspError::Db(_) | PspError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The provider's error `type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            PspError::Invalid(_) | PspError::NoSuchCharge(_) => "invalid_request_error",
            PspError::Idempotency(_) | PspError::InProgress => "idempotency_error",
            PspError::Db(_) | PspError::Internal(_) => "api_error",
        }
    }
}

impl IntoResponse for PspError {
    fn into_response(self) -> Response {
        let message = match &self {
            PspError::Db(e) => {
                tracing::error!(error = %e, "psp-sim database error");
                "internal error".to_string()
            }
            PspError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "psp-sim internal error");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        provider_error(self.status(), self.error_type(), message)
    }
}
