//! The transactional outbox and its relay.
//!
//! A use case calls [`enqueue`] inside the transaction that changes its
//! aggregate, so the message exists if and only if the change committed. The
//! [`relay`] publishes unsent rows with publisher confirms and marks a row
//! sent only once the broker has confirmed it. Rows are claimed with
//! `FOR UPDATE SKIP LOCKED`, so several replicas relay in parallel without
//! publishing a row twice; a crash between the confirm and the commit can
//! publish a row again, which the consumers' inbox absorbs.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use contracts::{Envelope, Message};
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;

use super::{Broker, headers};
use crate::config::MessagingConfig;
use crate::telemetry;

/// Writes `envelope` to the outbox on `conn`, which should be inside the
/// transaction of the change it announces. Fills the trace context from the
/// current span when the envelope has none.
#[tracing::instrument(skip_all, fields(message_type = T::TYPE, message_id = %envelope.message_id))]
pub async fn enqueue<T: Message>(conn: &mut PgConnection, envelope: &Envelope<T>) -> sqlx::Result<()> {
    let mut envelope_json = serde_json::to_value(envelope).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let traceparent = envelope.traceparent.clone().or_else(telemetry::current_traceparent);
    if let (Some(tp), Some(obj)) = (&traceparent, envelope_json.as_object_mut()) {
        obj.insert("traceparent".into(), tp.clone().into());
    }
    sqlx::query(
        "INSERT INTO outbox (message_id, exchange, routing_key, message_type, envelope, traceparent)
         VALUES ($1, 'events', $2, $3, $4, $5)",
    )
    .bind(envelope.message_id)
    .bind(T::ROUTING_KEY)
    .bind(T::TYPE)
    .bind(envelope_json)
    .bind(traceparent)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    message_id: Uuid,
    routing_key: String,
    message_type: String,
    envelope: serde_json::Value,
    traceparent: Option<String>,
}

/// Publishes the outbox of `service` until `shutdown`. Wakes on `NOTIFY
/// outbox` and sweeps every `sweep_interval` in case a notification was missed.
pub async fn relay(
    service: &'static str,
    pool: PgPool,
    broker: Broker,
    cfg: MessagingConfig,
    shutdown: CancellationToken,
) {
    let mut listener: Option<PgListener> = None;
    let mut backoff = Duration::from_millis(100);
    let mut declared = false;
    let mut last_cleanup = Instant::now() - Duration::from_secs(3600);
    let mut last_lag = Instant::now() - Duration::from_secs(3600);
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        if listener.is_none() {
            match PgListener::connect_with(&pool).await {
                Ok(mut l) => match l.listen("outbox").await {
                    Ok(()) => listener = Some(l),
                    Err(e) => tracing::warn!(error = %e, "outbox listener failed to listen"),
                },
                Err(e) => tracing::warn!(error = %e, "outbox listener failed to connect"),
            }
        }
        // At most once a second (under load the relay wakes on every commit),
        // and also while publishing fails, when the backlog matters most.
        if last_lag.elapsed() >= Duration::from_secs(1) {
            if let Err(e) = export_lag(service, &pool).await {
                tracing::debug!(error = %e, "outbox lag query failed");
            }
            last_lag = Instant::now();
        }
        let result = async {
            if !declared {
                let ch = broker.publisher().await.context("open publisher channel")?;
                broker.declare_events_exchange(&ch).await.context("declare events exchange")?;
                declared = true;
            }
            publish_batch(service, &pool, &broker, cfg.outbox_batch_size).await
        }
        .await;
        match result {
            Ok(n) => {
                backoff = Duration::from_millis(100);
                if n as i64 >= cfg.outbox_batch_size {
                    continue; // more is waiting
                }
            }
            Err(e) => {
                metrics::counter!("outbox_publish_failures_total", "service" => service).increment(1);
                tracing::warn!(
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "outbox relay failed"
                );
                broker.reset_publisher().await;
                declared = false;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        }
        if last_cleanup.elapsed() > Duration::from_secs(600) {
            if let Err(e) = cleanup(&pool, cfg.retention).await {
                tracing::warn!(error = %e, "outbox cleanup failed");
            }
            last_cleanup = Instant::now();
        }
        // Wait for a NOTIFY, the sweep timer, or shutdown.
        let wait = async {
            match listener.as_mut() {
                Some(l) => match tokio::time::timeout(cfg.outbox_sweep_interval, l.recv()).await {
                    Ok(Ok(_)) => {
                        // One batch answers every commit notified so far: under
                        // load, wake once for all of them, not once for each.
                        while l.next_buffered().is_some() {}
                    }
                    Err(_) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "outbox listener lost its connection");
                        listener = None;
                    }
                },
                None => tokio::time::sleep(cfg.outbox_sweep_interval).await,
            }
        };
        tokio::select! {
            _ = wait => {}
            _ = shutdown.cancelled() => break,
        }
    }
    tracing::info!(service, "outbox relay stopped");
}

/// Publishes one batch of unsent rows; returns how many were claimed.
async fn publish_batch(service: &'static str, pool: &PgPool, broker: &Broker, batch: i64) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await.context("begin")?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, message_id, routing_key, message_type, envelope, traceparent
           FROM outbox WHERE published_at IS NULL
          ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(batch)
    .fetch_all(&mut *tx)
    .await
    .context("claim outbox rows")?;
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let ch = broker.publisher().await.context("open publisher channel")?;
    let exchange = broker.topology().events_exchange();
    let mut pending = Vec::with_capacity(rows.len());
    for row in &rows {
        let span = tracing::info_span!(
            "outbox publish",
            otel.name = format!("{} publish", row.routing_key),
            otel.kind = "producer",
            messaging.system = "rabbitmq",
            messaging.destination.name = %exchange,
            messaging.message.id = %row.message_id,
            message_type = %row.message_type,
        );
        telemetry::set_parent(&span, row.traceparent.as_deref());
        let confirm = async {
            let mut h = FieldTable::default();
            // The publish span becomes the consumer's parent.
            if let Some(tp) = telemetry::current_traceparent().or_else(|| row.traceparent.clone()) {
                h.insert(headers::TRACEPARENT.into(), AMQPValue::LongString(tp.into()));
            }
            h.insert(headers::ATTEMPT.into(), AMQPValue::LongInt(1));
            let props = BasicProperties::default()
                .with_message_id(row.message_id.to_string().into())
                .with_type(row.message_type.clone().into())
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_app_id(service.into())
                .with_timestamp(time::OffsetDateTime::now_utc().unix_timestamp() as u64)
                .with_headers(h);
            let body = serde_json::to_vec(&row.envelope)?;
            let confirm = ch
                .basic_publish(
                    exchange.clone().into(),
                    row.routing_key.clone().into(),
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await?;
            anyhow::Ok(confirm)
        }
        .instrument(span)
        .await?;
        pending.push((row.seq, confirm));
    }
    let mut sent = Vec::with_capacity(pending.len());
    let mut failed = Vec::new();
    for (seq, confirm) in pending {
        match tokio::time::timeout(Duration::from_secs(10), confirm).await {
            Ok(Ok(c)) if c.is_ack() => sent.push(seq),
            Ok(Ok(_)) => failed.push(seq),
            Ok(Err(e)) => return Err(e).context("wait for publisher confirm"),
            Err(_) => anyhow::bail!("the broker did not confirm within 10s"),
        }
    }
    sqlx::query("UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE seq = ANY($1)")
        .bind(&sent)
        .execute(&mut *tx)
        .await?;
    if !failed.is_empty() {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = 'nacked by the broker' WHERE seq = ANY($1)",
        )
        .bind(&failed)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await.context("mark outbox rows sent")?;
    metrics::counter!("outbox_published_total", "service" => service).increment(sent.len() as u64);
    if !failed.is_empty() {
        anyhow::bail!("the broker refused {} messages", failed.len());
    }
    Ok(rows.len())
}

/// Exports the backlog: unsent rows and the age of the oldest one.
async fn export_lag(service: &'static str, pool: &PgPool) -> sqlx::Result<()> {
    let (count, age): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at))::float8
           FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    metrics::gauge!("outbox_unsent_rows", "service" => service).set(count as f64);
    metrics::gauge!("outbox_oldest_unsent_age_seconds", "service" => service).set(age.unwrap_or(0.0));
    Ok(())
}

/// Deletes published outbox rows, inbox records and idempotency keys past
/// their retention.
async fn cleanup(pool: &PgPool, retention: Duration) -> sqlx::Result<()> {
    let secs = retention.as_secs_f64();
    sqlx::query("DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)")
        .bind(secs)
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM inbox WHERE processed_at < now() - make_interval(secs => $1)")
        .bind(secs)
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM idempotency_keys WHERE expires_at < now()").execute(pool).await?;
    Ok(())
}
