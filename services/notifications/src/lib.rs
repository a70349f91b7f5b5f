//! notifications: one e-mail to the customer per invoice issued, order
//! cancelled and shipment scheduled.
//!
//! Consumes `OrderPlacedV1` (queue `notifications.order_placed`) to learn
//! each order's recipient (its `contact_email`), and `InvoiceIssuedV1`,
//! `OrderCancelledV1` and `ShipmentScheduledV1` (queues
//! `notifications.invoice_issued`, `notifications.order_cancelled`,
//! `notifications.shipment_scheduled`). In the consumer's transaction (which
//! also records the message in the inbox) it renders the e-mail from the
//! Portuguese templates and stores it as `pending`, keyed by the event's
//! message id, so a redelivered event changes nothing. An event whose
//! order's recipient is not known yet (its `OrderPlacedV1` travels on
//! another queue) fails as unavailable: the platform retries it, and after
//! the last retry parks it in the dead-letter queue (`feira dlq replay`). An
//! order without a contact e-mail gets its e-mails recorded as `skipped`.
//!
//! The delivery worker then sends pending e-mails, outside any consumer
//! transaction: by SMTP when `FEIRA_NOTIFICATIONS_SMTP_URL` is set, else as
//! `.eml` files in `FEIRA_NOTIFICATIONS_MAIL_DIR`; failures are retried with
//! backoff, and an e-mail is `failed` after the last attempt. Metric:
//! `notifications_emails_total{kind,status}`.
//!
//! # Layout
//! - `http/`: `/emails` routes, DTOs and handlers (no SQL).
//! - `domain/`: e-mails, addresses, recipients; `domain/render.rs` renders
//!   the templates of `templates/` (embedded in the binary).
//! - `app/`: use cases.
//! - `repo/`: SQL (claiming due e-mails included).
//! - `events/`: one handler per consumed message.
//! - `delivery/`: the background sender and its transports (SMTP, mail folder).
//! - `migrations/`: the service's schema.

pub mod app;
pub mod delivery;
pub mod domain;
pub mod events;
pub mod http;
pub mod repo;

use std::path::PathBuf;

use axum::Router;
use platform::ErrorKind;
use platform::config::Var;
use platform::error::ApiError;
use platform::resilience::Backoff;
use platform::service::{RunFuture, Service, ServiceSpec};
use sqlx::PgPool;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const SMTP_URL: Var = Var {
    name: "FEIRA_NOTIFICATIONS_SMTP_URL",
    default: "",
    help: "SMTP server e-mails are sent through (`smtp://host:25`, `smtp://host:587?tls=required`, \
           `smtps://user:pass@host`); empty: write them as .eml files to FEIRA_NOTIFICATIONS_MAIL_DIR",
};
pub const MAIL_DIR: Var = Var {
    name: "FEIRA_NOTIFICATIONS_MAIL_DIR",
    default: "var/mail",
    help: "folder of the local mailbox (one `<email id>.eml` per e-mail) when no SMTP server is set",
};
pub const FROM: Var =
    Var { name: "FEIRA_NOTIFICATIONS_FROM", default: "feira <no-reply@feira.local>", help: "sender of every e-mail" };
pub const MAX_ATTEMPTS: Var = Var {
    name: "FEIRA_NOTIFICATIONS_MAX_ATTEMPTS",
    default: "8",
    help: "delivery attempts per e-mail before it is marked failed",
};
pub const RETRY_BASE: Var = Var {
    name: "FEIRA_NOTIFICATIONS_RETRY_BASE",
    default: "2s",
    help: "delay before the first retry of a failed delivery (doubling, with jitter)",
};
pub const RETRY_MAX: Var =
    Var { name: "FEIRA_NOTIFICATIONS_RETRY_MAX", default: "10m", help: "longest delay between delivery attempts" };
pub const SEND_LEASE: Var = Var {
    name: "FEIRA_NOTIFICATIONS_SEND_LEASE",
    default: "2m",
    help: "how long a worker holds an e-mail it is sending; after that (a crash) another attempt may take it",
};
pub const SMTP_TIMEOUT: Var =
    Var { name: "FEIRA_NOTIFICATIONS_SMTP_TIMEOUT", default: "30s", help: "timeout of each SMTP command" };
pub const POLL_INTERVAL: Var = Var {
    name: "FEIRA_NOTIFICATIONS_POLL_INTERVAL",
    default: "1s",
    help: "how often the delivery worker looks for due retries when no new e-mail woke it",
};

pub const SPEC: ServiceSpec = ServiceSpec {
    name: "notifications",
    default_port: 8109,
    migrator: Some(&MIGRATOR),
    openapi,
    vars: &[SMTP_URL, MAIL_DIR, FROM, MAX_ATTEMPTS, RETRY_BASE, RETRY_MAX, SEND_LEASE, SMTP_TIMEOUT, POLL_INTERVAL],
    consumers: events::CONSUMERS,
    run,
};

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "feira notifications",
    description = "E-mails to customers: their nota fiscal, a cancellation, a shipment's tracking code."
))]
struct ApiDoc;

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(http::emails::router())
}

/// The OpenAPI document alone (`feira openapi notifications`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

/// The delivery settings from the service's variables.
pub fn delivery_config(config: &platform::config::Config) -> anyhow::Result<delivery::DeliveryConfig> {
    let var = |v: &Var| config.var(v.name).unwrap_or(v.default).trim().to_string();
    let attempts: u32 = var(&MAX_ATTEMPTS)
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| anyhow::anyhow!("{} must be a positive whole number", MAX_ATTEMPTS.name))?;
    let transport = delivery::Transport::new(
        &var(&FROM),
        Some(var(&SMTP_URL).as_str()),
        &PathBuf::from(var(&MAIL_DIR)),
        config.duration(SMTP_TIMEOUT.name)?,
    )?;
    Ok(delivery::DeliveryConfig {
        transport,
        backoff: Backoff { base: config.duration(RETRY_BASE.name)?, max: config.duration(RETRY_MAX.name)?, attempts },
        lease: config.duration(SEND_LEASE.name)?,
        poll_interval: config.duration(POLL_INTERVAL.name)?,
        batch: 20,
    })
}

fn run(svc: Service) -> RunFuture {
    Box::pin(async move {
        let delivery = delivery_config(&svc.config)?;
        let (api, openapi) = api().split_for_parts();
        let api: Router = api.with_state(AppState { db: svc.db.clone() });
        svc.spawn_consumer(events::order_placed::CONSUMER, events::order_placed::OnOrderPlaced);
        svc.spawn_consumer(events::invoice_issued::CONSUMER, events::invoice_issued::OnInvoiceIssued);
        svc.spawn_consumer(events::order_cancelled::CONSUMER, events::order_cancelled::OnOrderCancelled);
        svc.spawn_consumer(events::shipment_scheduled::CONSUMER, events::shipment_scheduled::OnShipmentScheduled);
        svc.spawn_task(delivery::run(svc.db.clone(), delivery, svc.shutdown.clone()));
        svc.serve(api, openapi).await
    })
}

/// What can go wrong in notifications' API.
#[derive(Debug, thiserror::Error)]
pub enum NotificationsError {
    #[error("e-mail not found")]
    NotFound,
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl NotificationsError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            NotificationsError::NotFound => ErrorKind::NotFound,
            NotificationsError::Api(e) => e.kind,
            NotificationsError::Db(_) => ErrorKind::Internal,
        }
    }
}

impl From<NotificationsError> for ApiError {
    fn from(e: NotificationsError) -> Self {
        match e {
            NotificationsError::Api(e) => e,
            NotificationsError::Db(e) => ApiError::from(e),
            other => ApiError::new(other.kind(), other.to_string()),
        }
    }
}
