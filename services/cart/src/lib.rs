//! cart: a customer's cart in Redis, priced from the catalog, and the
//! checkout that places the order with orders.
//!
//! Every route needs an authenticated caller (`x-feira-user-id`, set by the
//! gateway); a cart is keyed by its customer's user id, so no other user can
//! reach it. The cart is a Redis hash `<FEIRA_AMQP_NAMESPACE>:cart:<user_id>`
//! (product → quantity and the last price seen), changed only by atomic Lua
//! scripts, and it expires `FEIRA_CART_TTL` after its last change.
//!
//! # Calls to other services (HTTP only)
//! - catalog `GET /products/{id}` for every price, through the `catalog`
//!   circuit breaker (5 consecutive failures open it for 10 s) and
//!   `FEIRA_CART_CATALOG_TIMEOUT`. Without the catalog, `GET /cart` answers
//!   the last known prices with `"price_stale": true`; adding an item and
//!   checking out answer 503 with `Retry-After`.
//! - shipping `GET /shipping/quotes/{id}` for the freight at checkout.
//! - orders `POST /orders` at checkout, with the caller's headers and the
//!   checkout's `Idempotency-Key` forwarded.
//!
//! # Checkout and retries
//! `POST /cart/checkout` requires an `Idempotency-Key`. The platform's
//! middleware (PostgreSQL) replays the first answer for a retry and refuses
//! the key with another body. Below it, the first attempt stores the exact
//! body it sends to orders in `checkout_attempts` before sending it; a retry
//! that reaches the handler (the first answer was lost, orders was down, the
//! process died after orders answered) re-sends those same bytes with the
//! same key, so orders replays the same order even if prices or the quote
//! changed meanwhile. The cart is deleted only after orders answered, then
//! the order is recorded with the attempt; a retry after that answers the
//! recorded order without calling orders again. Stock is not checked at
//! checkout: the order saga reserves it (the cart shows `available`).
//!
//! # Layout
//! - `http/`: the `/cart` routes (`cart.rs`) and `/cart/checkout`
//!   (`checkout.rs`): DTOs and handlers, no storage.
//! - `domain/`: value types that parse (quantity, CEP, UF, e-mail, address,
//!   payment), the cart's pricing and totals, the checkout's order draft; no
//!   I/O.
//! - `app/`: use cases (load → ask the catalog → domain → store).
//! - `clients/`: HTTP clients of catalog (with the breaker), shipping and
//!   orders.
//! - `repo/`: Redis carts (`carts.rs`, Lua scripts) and SQL
//!   (`attempts.rs`).
//! - `migrations/`: `checkout_attempts` (the idempotency keys, outbox and
//!   inbox come from the platform).

pub mod app;
pub mod clients;
pub mod domain;
pub mod http;
pub mod repo;

use std::time::Duration;

use axum::Router;
use platform::ErrorKind;
use platform::config::Var;
use platform::error::{ApiError, FieldError};
use platform::service::{RunFuture, Service, ServiceSpec};
use sqlx::PgPool;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::domain::{CartRuleError, CheckoutRuleError, MAX_LINES};
use crate::repo::StoreError;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const CATALOG_URL: Var =
    Var { name: "FEIRA_CART_CATALOG_URL", default: "http://127.0.0.1:8104", help: "the catalog service's base URL" };
pub const CATALOG_TIMEOUT: Var = Var {
    name: "FEIRA_CART_CATALOG_TIMEOUT",
    default: "1s",
    help: "time a catalog call may take before it counts as a failure of the catalog",
};
pub const SHIPPING_URL: Var =
    Var { name: "FEIRA_CART_SHIPPING_URL", default: "http://127.0.0.1:8110", help: "the shipping service's base URL" };
pub const SHIPPING_TIMEOUT: Var =
    Var { name: "FEIRA_CART_SHIPPING_TIMEOUT", default: "2s", help: "time a shipping quote read may take" };
pub const ORDERS_URL: Var =
    Var { name: "FEIRA_CART_ORDERS_URL", default: "http://127.0.0.1:8106", help: "the orders service's base URL" };
pub const ORDERS_TIMEOUT: Var = Var {
    name: "FEIRA_CART_ORDERS_TIMEOUT",
    default: "5s",
    help: "time POST /orders may take before checkout answers 503 (a retry with the same key is safe)",
};
pub const TTL: Var = Var {
    name: "FEIRA_CART_TTL",
    default: "7d",
    help: "a cart expires this long after its last change (every change starts it again)",
};

pub const SPEC: ServiceSpec = ServiceSpec {
    name: "cart",
    default_port: 8105,
    migrator: Some(&MIGRATOR),
    openapi,
    vars: &[CATALOG_URL, CATALOG_TIMEOUT, SHIPPING_URL, SHIPPING_TIMEOUT, ORDERS_URL, ORDERS_TIMEOUT, TTL],
    consumers: &[],
    run,
};

#[derive(Clone)]
pub struct AppState {
    /// Checkout attempts (and the platform's idempotency keys).
    pub db: PgPool,
    pub store: repo::CartStore,
    pub catalog: clients::CatalogClient,
    pub shipping: clients::ShippingClient,
    pub orders: clients::OrdersClient,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "feira cart",
    description = "A customer's cart (Redis), priced from the catalog, and the checkout that places the order."
))]
struct ApiDoc;

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(http::cart::router()).merge(http::checkout::router())
}

/// The OpenAPI document alone (`feira openapi cart`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

fn var<'a>(svc: &'a Service, v: &Var) -> &'a str {
    svc.config.var(v.name).unwrap_or(v.default)
}

fn run(svc: Service) -> RunFuture {
    Box::pin(async move {
        let ttl = svc.config.duration(TTL.name)?;
        if ttl < Duration::from_secs(1) {
            anyhow::bail!("invalid value for {}: a cart must live at least 1s", TTL.name);
        }
        let http = reqwest::Client::builder().build()?;
        let state = AppState {
            db: svc.db.clone(),
            store: repo::CartStore::new(&svc.config.redis_url, &svc.config.messaging.namespace, ttl)?,
            catalog: clients::CatalogClient::new(
                http.clone(),
                var(&svc, &CATALOG_URL),
                svc.config.duration(CATALOG_TIMEOUT.name)?,
            ),
            shipping: clients::ShippingClient::new(
                http.clone(),
                var(&svc, &SHIPPING_URL),
                svc.config.duration(SHIPPING_TIMEOUT.name)?,
            ),
            orders: clients::OrdersClient::new(http, var(&svc, &ORDERS_URL), svc.config.duration(ORDERS_TIMEOUT.name)?),
        };
        // Attempts outlive their idempotency keys a little, then go.
        let keep = svc.config.http.idempotency_ttl + Duration::from_secs(3600);
        svc.spawn_task(app::sweep_attempts(svc.db.clone(), keep, svc.shutdown.clone()));
        let (api, openapi) = api().split_for_parts();
        let api: Router = api.with_state(state);
        let api =
            api.layer(axum::middleware::from_fn_with_state(svc.idempotency(), platform::http::idempotency::layer));
        svc.serve(api, openapi).await
    })
}

/// What can go wrong in the cart.
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    #[error("product {0} not found")]
    ProductNotFound(Uuid),
    #[error("product {0} is not sold")]
    ProductInactive(Uuid),
    #[error("the cart holds products in {cart}; this product is sold in {product}")]
    OtherCurrency { cart: String, product: String },
    #[error("the cart already holds {MAX_LINES} products")]
    Full,
    #[error("an Idempotency-Key header is required to check out")]
    KeyRequired,
    #[error("this Idempotency-Key was already used for a different checkout")]
    KeyReused,
    #[error("unknown shipping quote")]
    QuoteUnknown,
    #[error(transparent)]
    Checkout(#[from] CheckoutRuleError),
    #[error(transparent)]
    Totals(#[from] CartRuleError),
    #[error("the catalog is unavailable, try again later")]
    CatalogUnavailable,
    #[error("shipping is unavailable, try again later")]
    ShippingUnavailable(String),
    #[error("orders is unavailable, try again later")]
    OrdersUnavailable(String),
    #[error("the cart store is unavailable, try again later")]
    Store(#[from] StoreError),
    /// Orders refused the order: its answer, passed on.
    #[error("{detail}")]
    Rejected { status: u16, detail: String, errors: Vec<FieldError> },
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl CartError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CartError::ProductNotFound(_) => ErrorKind::NotFound,
            CartError::ProductInactive(_)
            | CartError::OtherCurrency { .. }
            | CartError::Full
            | CartError::KeyReused
            | CartError::QuoteUnknown
            | CartError::Checkout(_)
            | CartError::Totals(_) => ErrorKind::Unprocessable,
            CartError::KeyRequired => ErrorKind::BadRequest,
            CartError::CatalogUnavailable
            | CartError::ShippingUnavailable(_)
            | CartError::OrdersUnavailable(_)
            | CartError::Store(_) => ErrorKind::Unavailable,
            CartError::Rejected { status, .. } => kind_of_status(*status),
            CartError::Api(e) => e.kind,
            CartError::Db(e) if platform::error::is_transient(e) => ErrorKind::Unavailable,
            CartError::Db(_) | CartError::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// The kind whose status is `status` (a 4xx orders answered).
fn kind_of_status(status: u16) -> ErrorKind {
    match status {
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        413 => ErrorKind::PayloadTooLarge,
        415 => ErrorKind::UnsupportedMediaType,
        422 => ErrorKind::Unprocessable,
        _ => ErrorKind::BadRequest,
    }
}

impl From<CartError> for ApiError {
    fn from(e: CartError) -> Self {
        let kind = e.kind();
        match e {
            CartError::Api(e) => e,
            CartError::Db(e) => ApiError::from(e),
            CartError::Internal(e) => ApiError::internal(e),
            CartError::Rejected { detail, errors, .. } => ApiError { kind, detail, errors, source: None },
            e @ (CartError::Store(_) | CartError::ShippingUnavailable(_) | CartError::OrdersUnavailable(_)) => {
                let detail = e.to_string();
                let cause = match e {
                    CartError::Store(s) => s.to_string(),
                    CartError::ShippingUnavailable(s) | CartError::OrdersUnavailable(s) => s,
                    _ => String::new(),
                };
                ApiError { kind, detail, errors: Vec::new(), source: Some(anyhow::anyhow!(cause)) }
            }
            other => ApiError::new(kind, other.to_string()),
        }
    }
}
