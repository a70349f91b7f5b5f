//! catalog: each seller's owner profile, categories and products (with
//! full-text search), their stock, and the stock reservations of the order
//! saga.
//!
//! Every change writes its versioned event (`OwnerChangedV1`,
//! `CategoryChangedV1`, `ProductChangedV1`, `StockChangedV1`) to the outbox in
//! the same transaction. The saga's commands (`ReserveStockV1`,
//! `ReleaseStockV1`, `CommitStockV1`) arrive on three queues and are
//! answered through the outbox (`StockReservedV1` / `StockRejectedV1`,
//! `StockReleasedV1`, `StockCommittedV1`), caused by the command; operators
//! have the same operations over HTTP (`/reservations`). A reservation that
//! is neither committed nor released within `FEIRA_CATALOG_RESERVATION_TTL`
//! expires: a sweeper gives its stock back.
//!
//! # Reservation semantics (what the saga can rely on)
//! - Reserve: all lines or none; lines of one product are added up. The
//!   first reserve of an order decides, and is kept: a repeat (any message
//!   id, any lines) changes nothing and re-announces that first outcome
//!   (`StockReservedV1` with the same `expires_at`, or the same
//!   `StockRejectedV1`), even if the reservation has since ended. A command
//!   that can never be served (no lines, a quantity out of 1..=10^6) is
//!   answered `invalid_request` and stores nothing. Unknown, inactive and
//!   deleted products are `unknown_product`, which wins over `out_of_stock`.
//! - Release: held stock goes back → `StockReleasedV1 {released}`; again, or
//!   after expiry → the same answer again (`released` / `expired`); an
//!   unknown order, a rejection or a sale → `{nothing_reserved}`, nothing
//!   changes.
//! - Commit: held stock is sold → `StockCommittedV1`; again → the same
//!   answer. A reservation that was released, expired (or is past its time:
//!   it expires first) or never held anything sells nothing and is answered
//!   `StockReleasedV1` with why (`released`, `expired`, `nothing_reserved`),
//!   so the saga can compensate at once instead of waiting for a timeout.
//! - Over HTTP (`/reservations`, admins) the same rules answer 201/200,
//!   404 for an unknown order and 409 where nothing can happen.
//!
//! # Who may do what
//! Owners, categories, active products and catalogs are public to read.
//! Writes belong to the seller whose user id is the owner id (role
//! `seller`) and to admins. Under `/owners/{id}` anyone else is refused (401
//! anonymous, 403 signed in); on an object named by its own id
//! (`/products/{id}`, `/categories/{id}`, `/products/{id}/stock`) anyone
//! else is told it does not exist (404), except its owner without the
//! seller role (403). Stock administration is never public; `/reservations`
//! is for admins.
//!
//! # Reads: a cache over a read replica
//! Public reads (`get_product`, `list_products`, `owner_catalog` in `app`)
//! go through a Redis cache (`FEIRA_REDIS_URL`, keys under
//! `<FEIRA_AMQP_NAMESPACE>:catalog:`, see `app::cache`) and, on a miss, to
//! the read pool (`FEIRA_CATALOG_READ_DATABASE_URL`, or the primary). Writes,
//! their own answers, stock administration and reservations use the primary.
//! Every write invalidates what it changed once committed, and the
//! `catalog.cache_invalidation` consumer does it again from the change
//! events (changes made by the saga's commands, other replicas, a lagging
//! read replica). Redis is optional: without it, reads go to the database.
//!
//! # Layout
//! - `http/`: one file per resource (owners, categories, products, stock,
//!   reservations): routes, DTOs and handlers, no SQL.
//! - `domain/`: value types that parse, owners, categories, products, stock
//!   levels, the reservation rules, the catalog document; no I/O.
//! - `app/`: use cases (transaction → domain → repository → outbox), the
//!   access rules, the cache's keys and invalidations (`app/cache.rs`) and
//!   the expiry sweeper.
//! - `repo/`: SQL.
//! - `events/`: one handler per consumed message (the saga's commands, and
//!   the service's own change events for the cache), and published-event
//!   mappers.
//! - `migrations/`: the service's schema (the outbox and inbox come from
//!   the platform).

pub mod app;
pub mod domain;
pub mod events;
pub mod http;
pub mod repo;

use std::time::Duration;

use axum::Router;
use platform::ErrorKind;
use platform::config::Var;
use platform::error::{ApiError, FieldError};
use platform::messaging::HandlerError;
use platform::service::{RunFuture, Service, ServiceSpec};
use sqlx::PgPool;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::domain::StockRuleError;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a reservation holds stock before it expires.
pub const RESERVATION_TTL: Var = Var {
    name: "FEIRA_CATALOG_RESERVATION_TTL",
    default: "15m",
    help: "how long a stock reservation holds its units before it expires and gives them back",
};

pub const SPEC: ServiceSpec = ServiceSpec {
    name: "catalog",
    default_port: 8104,
    migrator: Some(&MIGRATOR),
    openapi,
    vars: &[RESERVATION_TTL],
    consumers: &[
        events::reserve_stock::CONSUMER,
        events::release_stock::CONSUMER,
        events::commit_stock::CONSUMER,
        events::cache_invalidation::CONSUMER,
    ],
    run,
};

#[derive(Clone)]
pub struct AppState {
    /// The primary: writes, and the answers of writes.
    pub db: PgPool,
    /// Public reads (a replica, or the primary).
    pub db_read: PgPool,
    /// Public reads first (Redis; optional).
    pub cache: app::CatalogCache,
    pub reservation_ttl: Duration,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "feira catalog",
    description = "Owners, categories, products with full-text search, stock and stock reservations; \
                   publishes OwnerChangedV1, CategoryChangedV1, ProductChangedV1, StockChangedV1 and the \
                   replies to the stock commands."
))]
struct ApiDoc;

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(http::owners::router())
        .merge(http::categories::router())
        .merge(http::products::router())
        .merge(http::stock::router())
        .merge(http::reservations::router())
}

/// The OpenAPI document alone (`feira openapi catalog`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

fn run(svc: Service) -> RunFuture {
    Box::pin(async move {
        let ttl = svc.config.duration(RESERVATION_TTL.name)?;
        if ttl.is_zero() {
            anyhow::bail!("invalid value for {}: a reservation must hold for some time", RESERVATION_TTL.name);
        }
        let cache = app::CatalogCache::new(&svc.config.redis_url, &svc.config.messaging.namespace);
        let has_replica = svc.config.service(SPEC.name)?.read_database.is_some();
        let (api, openapi) = api().split_for_parts();
        let state =
            AppState { db: svc.db.clone(), db_read: svc.db_read.clone(), cache: cache.clone(), reservation_ttl: ttl };
        let api: Router = api.with_state(state);
        let api =
            api.layer(axum::middleware::from_fn_with_state(svc.idempotency(), platform::http::idempotency::layer));
        svc.spawn_outbox_relay();
        svc.spawn_consumer(events::reserve_stock::CONSUMER, events::reserve_stock::OnReserveStock { ttl });
        svc.spawn_consumer(events::release_stock::CONSUMER, events::release_stock::OnReleaseStock);
        svc.spawn_consumer(events::commit_stock::CONSUMER, events::commit_stock::OnCommitStock);
        svc.spawn_consumer(
            events::cache_invalidation::CONSUMER,
            events::cache_invalidation::OnCatalogChanged {
                cache: cache.clone(),
                replica: has_replica.then(|| app::ReplicaLag::new(svc.db_read.clone())),
            },
        );
        // The platform tracks only its own tasks: the sweeper gets a child of
        // the shutdown token, so it stops with the service (or when `serve`
        // fails), and is waited for here.
        let stop = svc.shutdown.child_token();
        let sweeper = tokio::spawn(app::expiry::run(svc.db.clone(), cache, app::expiry::interval(ttl), stop.clone()));
        let served = svc.serve(api, openapi).await;
        stop.cancel();
        if let Err(e) = sweeper.await {
            tracing::error!(error = %e, "the reservation sweeper panicked");
        }
        served
    })
}

/// What can go wrong in the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Absent, or not the caller's to see: the answer is the same.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the owner has no profile yet; create it with PUT /owners/{{id}}")]
    NoOwner,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// A field that parsed but does not fit the stored state.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error(transparent)]
    Stock(#[from] StockRuleError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl CatalogError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CatalogError::NotFound(_) | CatalogError::NoOwner => ErrorKind::NotFound,
            CatalogError::Forbidden(_) => ErrorKind::Forbidden,
            CatalogError::Conflict(_) => ErrorKind::Conflict,
            CatalogError::Invalid { .. } => ErrorKind::BadRequest,
            CatalogError::Stock(StockRuleError::BelowReserved { .. }) => ErrorKind::Conflict,
            CatalogError::Stock(_) => ErrorKind::Internal,
            CatalogError::Api(e) => e.kind,
            CatalogError::Db(e) if is_transient(e) => ErrorKind::Unavailable,
            CatalogError::Db(_) => ErrorKind::Internal,
        }
    }
}

/// A deadlock or serialization failure (PostgreSQL rolled the transaction
/// back; running it again succeeds), or the database being out of reach.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => matches!(d.code().as_deref(), Some("40P01" | "40001")),
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => true,
        _ => false,
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Api(e) => e,
            CatalogError::Invalid { field, message } => {
                ApiError::invalid(vec![FieldError { field: field.into(), message }])
            }
            CatalogError::Db(e) if is_transient(&e) => ApiError {
                kind: ErrorKind::Unavailable,
                detail: "the database is busy, try again".into(),
                errors: Vec::new(),
                source: Some(e.into()),
            },
            CatalogError::Db(e) => ApiError::from(e),
            CatalogError::Stock(e @ StockRuleError::BelowReserved { .. }) => {
                ApiError::new(ErrorKind::Conflict, e.to_string())
            }
            CatalogError::Stock(e) => ApiError::internal(e),
            other => ApiError::new(other.kind(), other.to_string()),
        }
    }
}

impl From<CatalogError> for HandlerError {
    fn from(e: CatalogError) -> Self {
        HandlerError::new(e.kind(), e)
    }
}
