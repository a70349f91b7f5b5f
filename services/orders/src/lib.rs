//! orders: places orders and runs each order's saga.
//!
//! `POST /orders` stores a `PENDING` order and, in the same transaction,
//! `OrderPlacedV1` and the saga's first command in the outbox. The saga
//! (orchestration) then waits for replies on one queue, `orders.saga`:
//! reserve stock (catalog) → charge (payments) → `CONFIRMED` (commit stock,
//! `OrderConfirmedV1`). Failures compensate in reverse and end the order
//! `CANCELLED` with a reason (`OrderCancelledV1`); every step has a deadline,
//! enforced by a sweeper, that compensates too. A customer may cancel until
//! the order ships. `GET /orders/{id}/timeline` shows each step.
//!
//! # Layout
//! - `http/`: the `/orders` routes, their DTOs and handlers (no SQL).
//! - `domain/`: value types that parse (`Sku`, `Quantity`, `Cep`, `Email`,
//!   ...), the `Order` aggregate and the saga's pure state machine
//!   (`domain/saga.rs`); no I/O.
//! - `app/`: use cases (transaction → domain → repository → outbox), the
//!   saga driver and its timeout sweeper (`app/saga.rs`).
//! - `repo/`: SQL.
//! - `events/`: domain → sent messages, and the `orders.saga` consumer.
//! - `migrations/`: the service's schema (the outbox and inbox come from
//!   the platform).

pub mod app;
pub mod domain;
pub mod events;
pub mod http;
pub mod repo;

use axum::Router;
use domain::Timeouts;
use platform::ErrorKind;
use platform::config::Var;
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
    vars: VARS,
    consumers: &[events::saga::CONSUMER],
    run,
};

const VARS: &[Var] = &[
    Var {
        name: "FEIRA_ORDERS_RESERVE_TIMEOUT",
        default: "30s",
        help: "how long the saga waits for the catalog to reserve stock before cancelling",
    },
    Var {
        name: "FEIRA_ORDERS_PAYMENT_TIMEOUT",
        default: "60s",
        help: "how long the saga waits for a card payment before cancelling (stock released, charge voided)",
    },
    Var {
        name: "FEIRA_ORDERS_PIX_TIMEOUT",
        default: "30m",
        help: "how long the saga waits for a PIX payment (never past the stock reservation)",
    },
    Var { name: "FEIRA_ORDERS_SAGA_SWEEP", default: "1s", help: "how often overdue saga steps are looked for" },
];

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub timeouts: Timeouts,
}

fn timeouts(svc: &Service) -> anyhow::Result<Timeouts> {
    let d =
        |name: &str| -> anyhow::Result<time::Duration> { Ok(time::Duration::try_from(svc.config.duration(name)?)?) };
    Ok(Timeouts {
        reserve: d("FEIRA_ORDERS_RESERVE_TIMEOUT")?,
        payment: d("FEIRA_ORDERS_PAYMENT_TIMEOUT")?,
        pix: d("FEIRA_ORDERS_PIX_TIMEOUT")?,
    })
}

#[derive(OpenApi)]
#[openapi(info(
    title = "feira orders",
    description = "Places orders and runs their saga (stock → payment → confirmation, with compensations)."
))]
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
        let timeouts = timeouts(&svc)?;
        let sweep = svc.config.duration("FEIRA_ORDERS_SAGA_SWEEP")?;
        let (api, openapi) = api().split_for_parts();
        let api: Router = api.with_state(AppState { db: svc.db.clone(), timeouts });
        let api =
            api.layer(axum::middleware::from_fn_with_state(svc.idempotency(), platform::http::idempotency::layer));
        svc.spawn_outbox_relay();
        svc.spawn_consumer(events::saga::CONSUMER, events::saga::SagaReplies { timeouts });
        svc.spawn_task(app::saga::run_timeout_sweeper(svc.db.clone(), timeouts, sweep, svc.shutdown.clone()));
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
    #[error("{0}")]
    Conflict(&'static str),
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
            OrdersError::Conflict(_) => ErrorKind::Conflict,
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
