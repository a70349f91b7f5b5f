//! invoices: issues exactly one invoice (nota fiscal) per confirmed order.
//!
//! Consumes `OrderConfirmedV1` (queue `invoices.order_confirmed`): only an
//! order whose saga finished (stock committed, payment captured) is
//! invoiced, so a placed order that is then cancelled never gets one. In the
//! consumer's transaction (which also records the message in the inbox) it
//! takes the next gapless number of the series, stores the invoice (lines,
//! freight and total) and writes `InvoiceIssuedV1` to the outbox.
//!
//! # Layout
//! - `http/`: `/invoices` routes, DTOs and handlers (no SQL).
//! - `domain/`: the invoice and the checks an order passes to be invoiced.
//! - `app/`: use cases.
//! - `repo/`: SQL (numbering included).
//! - `events/`: one handler per consumed message, and published-event mappers.
//! - `migrations/`: the service's schema.

pub mod app;
pub mod domain;
pub mod events;
pub mod http;
pub mod repo;

use axum::Router;
use platform::ErrorKind;
use platform::error::ApiError;
use platform::service::{RunFuture, Service, ServiceSpec};
use sqlx::PgPool;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const SPEC: ServiceSpec = ServiceSpec {
    name: "invoices",
    default_port: 8108,
    migrator: Some(&MIGRATOR),
    openapi,
    vars: &[],
    consumers: &[events::order_confirmed::CONSUMER],
    run,
};

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "feira invoices",
    description = "Issues one nota fiscal per order; publishes InvoiceIssuedV1."
))]
struct ApiDoc;

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(http::invoices::router())
}

/// The OpenAPI document alone (`feira openapi invoices`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

fn run(svc: Service) -> RunFuture {
    Box::pin(async move {
        let (api, openapi) = api().split_for_parts();
        let api: Router = api.with_state(AppState { db: svc.db.clone() });
        svc.spawn_outbox_relay();
        svc.spawn_consumer(events::order_confirmed::CONSUMER, events::order_confirmed::OnOrderConfirmed);
        svc.serve(api, openapi).await
    })
}

/// What can go wrong in invoices.
#[derive(Debug, thiserror::Error)]
pub enum InvoicesError {
    #[error("invoice not found")]
    NotFound,
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl InvoicesError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            InvoicesError::NotFound => ErrorKind::NotFound,
            InvoicesError::Api(e) => e.kind,
            InvoicesError::Db(_) => ErrorKind::Internal,
        }
    }
}

impl From<InvoicesError> for ApiError {
    fn from(e: InvoicesError) -> Self {
        match e {
            InvoicesError::Api(e) => e,
            InvoicesError::Db(e) => ApiError::from(e),
            other => ApiError::new(other.kind(), other.to_string()),
        }
    }
}
