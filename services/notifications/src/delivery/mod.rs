//! The delivery worker: claims due pending e-mails (`FOR UPDATE SKIP LOCKED`
//! plus a lease, so replicas share the work), sends each through the
//! [`Transport`], and records the outcome: `sent`, a retry after a backoff,
//! or `failed` after the last attempt (or a permanent refusal).
//!
//! It wakes when a consumer queues an e-mail (`pg_notify` on commit) and
//! otherwise every poll interval, which also picks up retries whose time
//! has come and e-mails whose lease ran out (a worker that crashed).

pub mod transport;

use std::time::Duration;

use platform::resilience::Backoff;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::app::count_email;
use crate::domain::{Email, EmailStatus};
use crate::repo;
pub use transport::{SendError, Transport};

/// How the worker sends and retries.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub transport: Transport,
    /// Delays between attempts; `backoff.attempts` is the most attempts an
    /// e-mail gets before it is `failed`.
    pub backoff: Backoff,
    /// How long a claimed e-mail is reserved for the worker that claimed it.
    pub lease: Duration,
    /// How often the worker looks for due e-mails when nothing woke it.
    pub poll_interval: Duration,
    /// E-mails claimed at once.
    pub batch: i64,
}

/// Sends e-mails until `shutdown`.
pub async fn run(db: PgPool, config: DeliveryConfig, shutdown: CancellationToken) {
    let mut listener = listen(&db).await;
    tracing::info!(transport = %config.transport, "e-mail delivery started");
    while !shutdown.is_cancelled() {
        let claimed = match repo::claim_due(&db, config.lease, config.batch).await {
            Ok(emails) => emails,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim e-mails to send");
                Vec::new()
            }
        };
        let full = claimed.len() as i64 >= config.batch;
        for c in claimed {
            let span = tracing::info_span!(
                "deliver",
                email_id = %c.email.id,
                kind = c.email.kind.as_str(),
                attempt = c.email.attempts
            );
            platform::telemetry::set_parent(&span, c.traceparent.as_deref());
            deliver(&db, &config, c.email).instrument(span).await;
        }
        if full {
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            woke = wait(&mut listener, config.poll_interval) => {
                if !woke {
                    listener = None;
                }
            }
        }
        if listener.is_none() {
            listener = listen(&db).await;
        }
    }
    tracing::info!("e-mail delivery stopped");
}

async fn listen(db: &PgPool) -> Option<PgListener> {
    let mut l = PgListener::connect_with(db).await.ok()?;
    l.listen(repo::EMAIL_QUEUED_CHANNEL).await.ok()?;
    Some(l)
}

/// Waits for a notification or the poll interval; false when the listener
/// broke (it is then opened again).
async fn wait(listener: &mut Option<PgListener>, poll: Duration) -> bool {
    match listener {
        Some(l) => match tokio::time::timeout(poll, l.recv()).await {
            Ok(Ok(_)) | Err(_) => true,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "e-mail notifications interrupted");
                tokio::time::sleep(poll).await;
                false
            }
        },
        None => {
            tokio::time::sleep(poll).await;
            false
        }
    }
}

async fn deliver(db: &PgPool, config: &DeliveryConfig, email: Email) {
    let outcome = config.transport.send(&email).await;
    let now = kernel::time::now();
    let recorded = match outcome {
        Ok(()) => repo::mark_sent(db, email.id, now).await.map(|done| {
            if done {
                tracing::info!("e-mail sent");
                count_email(email.kind, EmailStatus::Sent);
            }
        }),
        Err(e) if e.is_permanent() || email.attempts >= i32::try_from(config.backoff.attempts).unwrap_or(i32::MAX) => {
            let error = e.to_string();
            repo::mark_failed(db, email.id, &error).await.map(|done| {
                if done {
                    tracing::error!(error, "e-mail failed for good");
                    count_email(email.kind, EmailStatus::Failed);
                }
            })
        }
        Err(e) => {
            let retry = u32::try_from(email.attempts.saturating_sub(1)).unwrap_or(0);
            let delay = config.backoff.delay(retry);
            let at = now + delay;
            let error = e.to_string();
            tracing::warn!(error, retry_in_ms = delay.as_millis() as u64, "e-mail not sent; will retry");
            metrics::counter!("notifications_email_send_errors_total", "kind" => email.kind.as_str()).increment(1);
            repo::schedule_retry(db, email.id, &error, at).await
        }
    };
    if let Err(e) = recorded {
        // The lease runs out and the e-mail is tried again.
        tracing::warn!(error = %e, "could not record the outcome of a delivery");
    }
}
