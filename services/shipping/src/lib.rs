//! shipping: freight quotes and the shipments of confirmed orders, with an
//! external carrier (Correios-like; `carrier-sim` locally) behind a circuit
//! breaker.
//!
//! - `POST /shipping/quotes` asks the carrier (timeout, breaker `carrier`);
//!   when it is down, slow or the breaker is open, the price comes from a
//!   fallback table by region and weight (`source: fallback`). Quotes expire
//!   (`GET` answers 410).
//! - `OrderConfirmedV1` (queue `shipping.order_confirmed`) records a shipment
//!   in the consumer's transaction; the booking worker books it with the
//!   carrier outside any transaction, retrying with backoff while the
//!   carrier is down, and writes `ShipmentScheduledV1` to the outbox with
//!   the tracking code.
//! - `OrderCancelledV1` (queue `shipping.order_cancelled`) cancels a shipment
//!   not yet booked, and flags a booked one `cancel_requested`.
//!
//! # Layout
//! - `http/`: `/shipping/quotes` and `/shipments` routes, DTOs and handlers (no SQL).
//! - `domain/`: CEP, services, weights, quotes, the fallback rate table,
//!   the shipment's states (no I/O).
//! - `app/`: use cases; `app/booking.rs` is the booking worker.
//! - `carrier.rs`: the carrier's HTTP API behind the breaker and timeout.
//! - `repo/`: SQL.
//! - `events/`: one handler per consumed message.
//! - `migrations/`: the service's schema.

pub mod app;
pub mod carrier;
pub mod domain;
pub mod events;
pub mod http;
pub mod repo;

use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use platform::ErrorKind;
use platform::config::{Config, Var};
use platform::error::{ApiError, Problem};
use platform::resilience::{Backoff, BreakerConfig, CircuitBreaker};
use platform::service::{RunFuture, Service, ServiceSpec};
use sqlx::PgPool;
use time::OffsetDateTime;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::carrier::Carrier;
use crate::domain::Cep;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The service's own variables.
pub const VARS: &[Var] = &[
    Var {
        name: "FEIRA_SHIPPING_CARRIER_URL",
        default: "http://127.0.0.1:8202",
        help: "base URL of the carrier's API (carrier-sim locally)",
    },
    Var {
        name: "FEIRA_SHIPPING_CARRIER_TIMEOUT",
        default: "800ms",
        help: "time a carrier call may take before it counts as a failure (quotes then answer from the fallback table)",
    },
    Var {
        name: "FEIRA_SHIPPING_BREAKER_THRESHOLD",
        default: "3",
        help: "consecutive carrier failures that open the `carrier` circuit breaker",
    },
    Var {
        name: "FEIRA_SHIPPING_BREAKER_OPEN",
        default: "10s",
        help: "how long the carrier breaker stays open before a probe call may close it",
    },
    Var { name: "FEIRA_SHIPPING_ORIGIN_CEP", default: "01310100", help: "CEP the parcels ship from" },
    Var { name: "FEIRA_SHIPPING_QUOTE_TTL", default: "30m", help: "how long a quote is valid (then GET answers 410)" },
    Var {
        name: "FEIRA_SHIPPING_BOOKING_INTERVAL",
        default: "1s",
        help: "how often the booking worker looks for shipments to book",
    },
    Var {
        name: "FEIRA_SHIPPING_BOOKING_RETRY_BASE",
        default: "1s",
        help: "first delay before booking a shipment again after a carrier failure (doubles, with jitter)",
    },
    Var {
        name: "FEIRA_SHIPPING_BOOKING_RETRY_MAX",
        default: "5m",
        help: "longest delay between booking attempts while the carrier is down (it is retried until it is up)",
    },
];

pub const SPEC: ServiceSpec = ServiceSpec {
    name: "shipping",
    default_port: 8110,
    migrator: Some(&MIGRATOR),
    openapi,
    vars: VARS,
    consumers: &[events::order_confirmed::CONSUMER, events::order_cancelled::CONSUMER],
    run,
};

/// The service's settings, read from its variables.
#[derive(Debug, Clone)]
pub struct Settings {
    pub carrier_url: String,
    pub carrier_timeout: Duration,
    pub breaker: BreakerConfig,
    pub origin: Cep,
    pub quote_ttl: Duration,
    pub booking_interval: Duration,
    pub booking_backoff: Backoff,
}

impl Settings {
    pub fn from_config(config: &Config) -> anyhow::Result<Settings> {
        let var = |name: &str| config.var(name).with_context(|| format!("{name} is not declared"));
        let threshold: u32 = var("FEIRA_SHIPPING_BREAKER_THRESHOLD")?
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .context("FEIRA_SHIPPING_BREAKER_THRESHOLD must be a whole number greater than 0")?;
        let origin = var("FEIRA_SHIPPING_ORIGIN_CEP")?;
        let origin = Cep::parse(origin).with_context(|| format!("FEIRA_SHIPPING_ORIGIN_CEP {origin:?}"))?;
        Ok(Settings {
            carrier_url: var("FEIRA_SHIPPING_CARRIER_URL")?.to_string(),
            carrier_timeout: config.duration("FEIRA_SHIPPING_CARRIER_TIMEOUT")?,
            breaker: BreakerConfig {
                failure_threshold: threshold,
                open_for: config.duration("FEIRA_SHIPPING_BREAKER_OPEN")?,
                half_open_probes: 1,
            },
            origin,
            quote_ttl: config.duration("FEIRA_SHIPPING_QUOTE_TTL")?,
            booking_interval: config.duration("FEIRA_SHIPPING_BOOKING_INTERVAL")?,
            booking_backoff: Backoff {
                base: config.duration("FEIRA_SHIPPING_BOOKING_RETRY_BASE")?,
                max: config.duration("FEIRA_SHIPPING_BOOKING_RETRY_MAX")?,
                attempts: u32::MAX,
            },
        })
    }
}

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub db_read: PgPool,
    pub carrier: Carrier,
    pub settings: Settings,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "feira shipping",
    description = "Freight quotes (carrier behind a circuit breaker, fallback table) and the shipments of \
                   confirmed orders; consumes OrderConfirmedV1 and OrderCancelledV1, publishes ShipmentScheduledV1."
))]
struct ApiDoc;

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(http::quotes::router()).merge(http::shipments::router())
}

/// The OpenAPI document alone (`feira openapi shipping`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

fn run(svc: Service) -> RunFuture {
    Box::pin(async move {
        let settings = Settings::from_config(&svc.config)?;
        let breaker = CircuitBreaker::new("carrier", settings.breaker);
        let carrier = Carrier::new(&settings.carrier_url, settings.carrier_timeout, breaker)?;
        let state = AppState { db: svc.db.clone(), db_read: svc.db_read.clone(), carrier: carrier.clone(), settings };
        let (api, openapi) = api().split_for_parts();
        let api: Router = api.with_state(state.clone());
        svc.spawn_outbox_relay();
        svc.spawn_consumer(
            events::order_confirmed::CONSUMER,
            events::order_confirmed::OnOrderConfirmed { settings: state.settings.clone() },
        );
        svc.spawn_consumer(events::order_cancelled::CONSUMER, events::order_cancelled::OnOrderCancelled);
        let booker = app::booking::Booker {
            db: svc.db.clone(),
            carrier,
            backoff: state.settings.booking_backoff,
            interval: state.settings.booking_interval,
        };
        svc.spawn_task(booker.run(svc.shutdown.clone()));
        svc.serve(api, openapi).await
    })
}

/// What can go wrong in shipping.
#[derive(Debug, thiserror::Error)]
pub enum ShippingError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the quote expired at {0}; ask for a new one")]
    QuoteExpired(OffsetDateTime),
    #[error("the carrier refused the parcel: {0}")]
    CarrierRefused(String),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl ShippingError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ShippingError::NotFound(_) => ErrorKind::NotFound,
            // 410 Gone has no ErrorKind; see `into_response`.
            ShippingError::QuoteExpired(_) => ErrorKind::NotFound,
            ShippingError::CarrierRefused(_) => ErrorKind::Unprocessable,
            ShippingError::Api(e) => e.kind,
            ShippingError::Db(_) => ErrorKind::Internal,
        }
    }
}

impl From<ShippingError> for ApiError {
    fn from(e: ShippingError) -> Self {
        match e {
            ShippingError::Api(e) => e,
            ShippingError::Db(e) => ApiError::from(e),
            other => ApiError::new(other.kind(), other.to_string()),
        }
    }
}

impl IntoResponse for ShippingError {
    fn into_response(self) -> Response {
        match self {
            e @ ShippingError::QuoteExpired(_) => Problem::new(StatusCode::GONE, Some(e.to_string())).into_response(),
            other => ApiError::from(other).into_response(),
        }
    }
}
