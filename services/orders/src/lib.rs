//! orders: places orders and announces them.
//!
//! `POST /orders` stores a `PENDING` order and, in the same transaction, an
//! `OrderPlacedV1` in the outbox; the relay publishes it to RabbitMQ.
//!
//! # Layout
//! - `http/`: the `/orders` routes, their DTOs and handlers (no SQL).
//! - `domain/`: value types that parse (`Sku`, `Quantity`, `Cents`,
//!   `Currency`) and the `Order` aggregate; no I/O.
//! - `app/`: use cases (transaction → domain → repository → outbox).
//! - `repo/`: SQL.
//! - `events/`: domain → published event.
//! - `migrations/`: the service's schema (the outbox and inbox come from
//!   the platform).

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
    name: "orders",
    default_port: 8106,
    migrator: Some(&MIGRATOR),
    openapi,
    vars: &[],
    consumers: &[],
    run,
};

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
}

#[derive(OpenApi)]
#[openapi(info(title = "feira orders", description = "Places orders; publishes OrderPlacedV1."))]
struct ApiDoc;

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(http::orders::router())
}

/// The OpenAPI document alone (`feira openapi orders`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

fn run(svc: Service) -> RunFuture {
    Box::pin(async move {
        let (api, openapi) = api().split_for_parts();
        let api: Router = api.with_state(AppState { db: svc.db.clone() });
        let api =
            api.layer(axum::middleware::from_fn_with_state(svc.idempotency(), platform::http::idempotency::layer));
        svc.spawn_outbox_relay();
        svc.serve(api, openapi).await
    })
}

/// What can go wrong in orders.
#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    #[error("order not found")]
    NotFound,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("this Idempotency-Key was already used for a different order")]
    KeyReused,
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl OrdersError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            OrdersError::NotFound => ErrorKind::NotFound,
            OrdersError::Forbidden(_) => ErrorKind::Forbidden,
            OrdersError::KeyReused => ErrorKind::Unprocessable,
            OrdersError::Api(e) => e.kind,
            OrdersError::Db(_) => ErrorKind::Internal,
        }
    }
}

impl From<OrdersError> for ApiError {
    fn from(e: OrdersError) -> Self {
        match e {
            OrdersError::Api(e) => e,
            OrdersError::Db(e) => ApiError::from(e),
            other => ApiError::new(other.kind(), other.to_string()),
        }
    }
}
