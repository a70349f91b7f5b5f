//! The sweeper that expires reservations held past their time.
//!
//! Every replica runs one. Each sweep claims due reservations with
//! `FOR UPDATE SKIP LOCKED`, so replicas share the work without waiting on
//! each other, and gives their stock back in one transaction per batch
//! (`StockReleasedV1 {reason: "expired"}` and `StockChangedV1`).

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::CatalogCache;

/// Reservations expired per transaction.
const BATCH: i64 = 200;

/// How often to sweep: a quarter of the time to live, between 100 ms and 5 s
/// (so a reservation outlives its time by at most that much).
pub fn interval(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

/// Sweeps every `every` until `stop`. A sweep in progress finishes first.
pub async fn run(db: PgPool, cache: CatalogCache, every: Duration, stop: CancellationToken) {
    tracing::info!(interval_ms = every.as_millis() as u64, "reservation sweeper started");
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => break,
        }
        loop {
            match super::expire_due(&db, &cache, BATCH).await {
                Ok(n) if n as i64 == BATCH && !stop.is_cancelled() => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "reservation sweep failed");
                    break;
                }
            }
        }
    }
    tracing::info!("reservation sweeper stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_interval_follows_the_time_to_live_within_bounds() {
        assert_eq!(interval(Duration::from_secs(15 * 60)), Duration::from_secs(5));
        assert_eq!(interval(Duration::from_secs(1)), Duration::from_millis(250));
        assert_eq!(interval(Duration::from_millis(10)), Duration::from_millis(100));
    }
}
