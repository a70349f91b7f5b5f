//! The coalescing publisher loop: a few workers, each publishing due owners
//! one at a time ([`app::publish::publish_next`]) until none is due, then
//! waiting a poll interval. Safe with any number of workers and replicas:
//! an owner is claimed with `FOR UPDATE SKIP LOCKED`.
//!
//! Metrics: `catalog_publisher_published_total`,
//! `catalog_publisher_unchanged_total` (built, same hash, nothing written),
//! `catalog_publisher_publish_failures_total` (store writes that failed; the
//! owner stays dirty and is retried with a growing delay),
//! `catalog_publisher_unknown_owner_total`, and the gauges
//! `catalog_publisher_dirty_owners` and `catalog_publisher_oldest_dirty_seconds`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::app::publish::{self, Outcome};
use crate::domain::Coalescing;
use crate::repo;
use crate::store::CatalogStore;

/// Owners published at once by one replica (each holds a database connection
/// while its document is written).
pub const WORKERS: usize = 4;

pub const PUBLISHED: &str = "catalog_publisher_published_total";
pub const UNCHANGED: &str = "catalog_publisher_unchanged_total";
pub const FAILURES: &str = "catalog_publisher_publish_failures_total";
pub const UNKNOWN_OWNER: &str = "catalog_publisher_unknown_owner_total";

/// Shows every counter at 0 before anything happened, so rates and alerts
/// have a series from the start.
pub fn register_metrics() {
    for name in [PUBLISHED, UNCHANGED, FAILURES, UNKNOWN_OWNER] {
        metrics::counter!(name).increment(0);
    }
}

/// One worker, until `shutdown`. A publication in progress when shutdown
/// comes is finished first.
pub async fn run(worker: usize, db: PgPool, store: Arc<CatalogStore>, rules: Coalescing, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    tracing::info!(
        worker,
        store = store.description(),
        window_ms = rules.window.as_millis() as u64,
        "catalog publisher started"
    );
    while !shutdown.is_cancelled() {
        let started = Instant::now();
        let pause = match publish::publish_next(&db, &store, rules).await {
            Ok(outcome) => {
                backoff = Duration::from_millis(200);
                record(&outcome, started);
                match outcome {
                    Outcome::Idle | Outcome::Failed { .. } => Some(rules.poll_interval()),
                    _ => None,
                }
            }
            Err(_) if shutdown.is_cancelled() => break,
            Err(e) => {
                tracing::warn!(
                    worker,
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "catalog publisher failed, the owner stays dirty"
                );
                let pause = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                Some(pause)
            }
        };
        if let Some(pause) = pause {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }
    tracing::info!(worker, "catalog publisher stopped");
}

fn record(outcome: &Outcome, started: Instant) {
    match outcome {
        Outcome::Idle => return,
        Outcome::Published { owner_id, version, sha256 } => {
            metrics::counter!(PUBLISHED).increment(1);
            tracing::info!(owner_id = %owner_id, version, sha256 = %sha256, "catalog published");
        }
        Outcome::Unchanged { owner_id } => {
            metrics::counter!(UNCHANGED).increment(1);
            tracing::info!(owner_id = %owner_id, "catalog unchanged, nothing published");
        }
        Outcome::UnknownOwner { owner_id } => {
            metrics::counter!(UNKNOWN_OWNER).increment(1);
            tracing::info!(owner_id = %owner_id, "owner not known yet, its catalog waits for OwnerChangedV1");
        }
        Outcome::Failed { owner_id, attempt, retry_in, error } => {
            metrics::counter!(FAILURES).increment(1);
            tracing::warn!(
                owner_id = %owner_id,
                attempt,
                retry_in_ms = retry_in.as_millis() as u64,
                error = format!("{error:#}"),
                "catalog publish failed, the owner stays dirty and will be retried"
            );
        }
    }
    metrics::histogram!("catalog_publisher_publish_duration_seconds").record(started.elapsed().as_secs_f64());
}

/// Exports the backlog gauges every second until `shutdown`.
pub async fn export_backlog(db: PgPool, shutdown: CancellationToken) {
    loop {
        if let Ok(mut conn) = db.acquire().await {
            match repo::backlog(&mut conn).await {
                Ok((dirty, oldest)) => {
                    metrics::gauge!("catalog_publisher_dirty_owners").set(dirty as f64);
                    metrics::gauge!("catalog_publisher_oldest_dirty_seconds").set(oldest);
                }
                Err(e) => tracing::debug!(error = %e, "backlog query failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
