//! payments: charges and refunds for the order saga, through an external
//! payment provider (PSP), exactly once per order under faults.
//!
//! Consumes `ChargePaymentV1` (queue `payments.charge_payment`) and
//! `RefundPaymentV1` (queue `payments.refund_payment`); replies
//! `PaymentSucceededV1`, `PaymentPendingV1` (PIX), `PaymentFailedV1` and
//! `PaymentRefundedV1` through the outbox, caused by the command they answer.
//!
//! A command only records work (in the consumer's transaction, with the
//! inbox record); a background worker claims it with a lease and calls the
//! provider with the order's idempotency key (`order-<id>-charge`), so a
//! retry, a second replica or a restart after a crash never charges twice.
//! PIX payments are confirmed by the provider's signed webhook.
//!
//! # Layout
//! - `http/`: `/payments` reads and the provider's webhook (no SQL).
//! - `domain/`: the payment's states and rules, the replies, the webhook
//!   signature (pure).
//! - `app/`: use cases for the commands, the webhook and the reads; `worker`
//!   runs the provider calls.
//! - `psp/`: the provider's HTTP API behind the `psp` circuit breaker.
//! - `repo/`: SQL (claims with `FOR UPDATE SKIP LOCKED` included).
//! - `events/`: one handler per consumed command.
//! - `migrations/`: the service's schema.

pub mod app;
pub mod domain;
pub mod events;
pub mod http;
pub mod psp;
pub mod repo;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use platform::ErrorKind;
use platform::config::{Config, Var};
use platform::error::ApiError;
use platform::resilience::{Backoff, BreakerConfig};
use platform::service::{RunFuture, Service, ServiceSpec};
use sqlx::PgPool;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::worker::WorkerSettings;
use crate::psp::{Psp, PspSettings};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const VARS: &[Var] = &[
    Var { name: "FEIRA_PAYMENTS_PSP_URL", default: "http://127.0.0.1:8201", help: "base URL of the payment provider" },
    Var {
        name: "FEIRA_PAYMENTS_PUBLIC_URL",
        default: "http://127.0.0.1:8107",
        help: "URL the provider reaches payments at; webhooks go to <url>/payments/webhooks/psp",
    },
    Var { name: "FEIRA_PAYMENTS_PSP_TIMEOUT", default: "2s", help: "time one provider call may take" },
    Var {
        name: "FEIRA_PAYMENTS_BREAKER_THRESHOLD",
        default: "5",
        help: "consecutive provider failures that open the `psp` circuit breaker",
    },
    Var { name: "FEIRA_PAYMENTS_BREAKER_OPEN", default: "10s", help: "how long the `psp` breaker stays open" },
    Var {
        name: "FEIRA_PAYMENTS_CHARGE_DEADLINE",
        default: "2m",
        help: "time a charge is retried for; then the provider is asked whether a charge exists, else it failed",
    },
    Var {
        name: "FEIRA_PAYMENTS_CLAIM_LEASE",
        default: "30s",
        help: "how long a worker owns a payment it works on; a crashed worker's payment is retried after it (at least 3x the PSP timeout)",
    },
    Var {
        name: "FEIRA_PAYMENTS_PSP_WEBHOOK_SECRET",
        default: "whsec_feira_local",
        help: "secret the provider signs its webhooks with (HMAC-SHA256)",
    },
];

pub const SPEC: ServiceSpec = ServiceSpec {
    name: "payments",
    default_port: 8107,
    migrator: Some(&MIGRATOR),
    openapi,
    vars: VARS,
    consumers: &[events::charge_payment::CONSUMER, events::refund_payment::CONSUMER],
    run,
};

/// Retries of provider calls: 200 ms doubling to 5 s, with full jitter.
pub const RETRY_BACKOFF: Backoff =
    Backoff { base: Duration::from_millis(200), max: Duration::from_secs(5), attempts: u32::MAX };

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub db_read: PgPool,
    pub webhook_secret: Arc<str>,
}

/// The service's settings, read from its variables.
#[derive(Debug, Clone)]
pub struct Settings {
    pub psp: PspSettings,
    pub worker: WorkerSettings,
    pub webhook_secret: String,
}

impl Settings {
    pub fn from_config(config: &Config) -> anyhow::Result<Settings> {
        let var = |name: &str| config.var(name).map(str::to_string).with_context(|| format!("{name} is not declared"));
        let timeout = config.duration("FEIRA_PAYMENTS_PSP_TIMEOUT")?;
        let lease = config.duration("FEIRA_PAYMENTS_CLAIM_LEASE")?;
        anyhow::ensure!(
            lease >= timeout * 3,
            "FEIRA_PAYMENTS_CLAIM_LEASE ({lease:?}) must be at least 3x FEIRA_PAYMENTS_PSP_TIMEOUT ({timeout:?})"
        );
        let threshold: u32 = var("FEIRA_PAYMENTS_BREAKER_THRESHOLD")?
            .parse()
            .context("FEIRA_PAYMENTS_BREAKER_THRESHOLD must be a positive integer")?;
        anyhow::ensure!(threshold > 0, "FEIRA_PAYMENTS_BREAKER_THRESHOLD must be a positive integer");
        let public = var("FEIRA_PAYMENTS_PUBLIC_URL")?;
        Ok(Settings {
            psp: PspSettings {
                base_url: var("FEIRA_PAYMENTS_PSP_URL")?,
                notify_url: format!("{}/payments/webhooks/psp", public.trim_end_matches('/')),
                timeout,
                breaker: BreakerConfig {
                    failure_threshold: threshold,
                    open_for: config.duration("FEIRA_PAYMENTS_BREAKER_OPEN")?,
                    half_open_probes: 1,
                },
            },
            worker: WorkerSettings {
                lease,
                charge_deadline: config.duration("FEIRA_PAYMENTS_CHARGE_DEADLINE")?,
                backoff: RETRY_BACKOFF,
            },
            webhook_secret: var("FEIRA_PAYMENTS_PSP_WEBHOOK_SECRET")?,
        })
    }
}

#[derive(OpenApi)]
#[openapi(info(
    title = "feira payments",
    description = "Payments of the order saga through the payment provider; the provider's signed webhooks."
))]
struct ApiDoc;

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(http::payments::router()).merge(http::webhooks::router())
}

/// The OpenAPI document alone (`feira openapi payments`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

fn run(svc: Service) -> RunFuture {
    Box::pin(async move {
        let settings = Settings::from_config(&svc.config)?;
        let psp = Psp::new(&settings.psp)?;
        let (api, openapi) = api().split_for_parts();
        let state = AppState {
            db: svc.db.clone(),
            db_read: svc.db_read.clone(),
            webhook_secret: Arc::from(settings.webhook_secret.as_str()),
        };
        let api: Router = api.with_state(state);
        svc.spawn_outbox_relay();
        svc.spawn_consumer(events::charge_payment::CONSUMER, events::charge_payment::OnChargePayment);
        svc.spawn_consumer(events::refund_payment::CONSUMER, events::refund_payment::OnRefundPayment);
        svc.spawn_task(app::worker::run(svc.db.clone(), psp, settings.worker, svc.shutdown.clone()));
        svc.serve(api, openapi).await
    })
}

/// What can go wrong in payments' HTTP API.
#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error("payment not found")]
    NotFound,
    #[error("webhook rejected: {0}")]
    Webhook(domain::webhook::SignatureError),
    #[error("webhook rejected: {0}")]
    BadWebhook(String),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl PaymentsError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            PaymentsError::NotFound => ErrorKind::NotFound,
            PaymentsError::Webhook(_) | PaymentsError::BadWebhook(_) => ErrorKind::BadRequest,
            PaymentsError::Api(e) => e.kind,
            PaymentsError::Db(_) => ErrorKind::Internal,
        }
    }
}

impl From<PaymentsError> for ApiError {
    fn from(e: PaymentsError) -> Self {
        match e {
            PaymentsError::Api(e) => e,
            PaymentsError::Db(e) => ApiError::from(e),
            other => ApiError::new(other.kind(), other.to_string()),
        }
    }
}
