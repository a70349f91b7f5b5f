//! Consumers with an inbox, broker-side retries and a dead-letter queue.
//!
//! For each delivery, in one database transaction: record the message id in
//! the inbox (a duplicate stops here), run the handler, commit; then ack.
//! Deliveries already waiting are taken together (up to the prefetch) into
//! one transaction with a savepoint per message, so a busy queue pays one
//! commit per batch and a failing message is rolled back alone.
//! A crash before the commit redelivers the message; a crash after it
//! redelivers a message the inbox already knows. Either way the effect
//! happens once.
//!
//! When the handler fails, the [`ErrorKind`](crate::error::ErrorKind) of its
//! error decides: retryable errors go to the delay queue of the next attempt
//! (1 s, 10 s, 60 s by default), others, and retryable ones after the last
//! attempt, go to the dead-letter queue with the error text. The failed
//! delivery is acknowledged once its copy is confirmed, so a poison message
//! never blocks the ones behind it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use contracts::{Envelope, Message};
use futures_util::{FutureExt as _, StreamExt as _};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;

use super::{Broker, header_int, header_str, headers};
use crate::config::MessagingConfig;
use crate::error::{Disposition, ErrorKind};
use crate::telemetry;

/// A consumer: its queue name (without the namespace) and routing keys.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerSpec {
    /// `<service>.<what it reacts to>`, e.g. `invoices.order_placed`.
    pub name: &'static str,
    pub bindings: &'static [&'static str],
    /// At most this many messages in one transaction; `None`: as many as
    /// are already delivered, up to the prefetch. A handler that locks rows
    /// other consumers lock too (stock) should take `Some(1)`: in a batch the
    /// locks of every message are held to the commit, in arrival order, and
    /// two batches deadlock.
    pub max_batch: Option<u16>,
}

/// A delivered message, its envelope parsed and its payload not yet.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub envelope: Envelope<serde_json::Value>,
    pub routing_key: String,
    /// 1 on the first attempt.
    pub attempt: u32,
}

impl Incoming {
    /// The payload as `T`; a payload that does not match its type can never
    /// be handled, so it is a bad request (dead-lettered at once).
    pub fn payload<T: Message>(&self) -> Result<Envelope<T>, HandlerError> {
        if self.envelope.message_type != T::TYPE || self.envelope.version != T::VERSION {
            return Err(HandlerError::new(
                ErrorKind::BadRequest,
                anyhow::anyhow!(
                    "expected {} v{}, got {} v{}",
                    T::TYPE,
                    T::VERSION,
                    self.envelope.message_type,
                    self.envelope.version
                ),
            ));
        }
        let payload: T = serde_json::from_value(self.envelope.payload.clone()).map_err(|e| {
            HandlerError::new(ErrorKind::BadRequest, anyhow::anyhow!("invalid {} payload: {e}", T::TYPE))
        })?;
        let e = &self.envelope;
        Ok(Envelope {
            message_id: e.message_id,
            message_type: e.message_type.clone(),
            version: e.version,
            occurred_at: e.occurred_at,
            correlation_id: e.correlation_id,
            causation_id: e.causation_id,
            traceparent: e.traceparent.clone(),
            payload,
        })
    }
}

/// Why a handler failed, and so what happens to the message.
#[derive(Debug)]
pub struct HandlerError {
    pub kind: ErrorKind,
    pub error: anyhow::Error,
}

impl HandlerError {
    pub fn new(kind: ErrorKind, error: impl Into<anyhow::Error>) -> Self {
        HandlerError { kind, error: error.into() }
    }
}

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        let kind = if crate::error::is_transient(&e) { ErrorKind::Unavailable } else { ErrorKind::Internal };
        HandlerError::new(kind, e)
    }
}

/// Applies one message inside the consumer's transaction.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, tx: &mut PgConnection, msg: &Incoming) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

enum Outcome {
    Processed,
    Duplicate,
}

/// Consumes `spec`'s queue until `shutdown`, reconnecting after broker
/// failures. A message being handled when shutdown comes is finished first.
/// `started` is called once, when the queues are declared and consuming.
pub async fn run<H: Handler>(
    spec: ConsumerSpec,
    handler: Arc<H>,
    pool: PgPool,
    broker: Broker,
    cfg: MessagingConfig,
    shutdown: CancellationToken,
    started: impl FnOnce() + Send,
) {
    let c = Consumer { spec, handler, pool, broker, cfg };
    let mut backoff = Duration::from_millis(100);
    let mut started = Some(started);
    while !shutdown.is_cancelled() {
        match c.consume(&shutdown, &mut started).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(
                    consumer = c.spec.name,
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "consumer lost the broker"
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    tracing::info!(consumer = c.spec.name, "consumer stopped");
}

/// A delivery with what was read from it before handling.
struct Pending {
    delivery: Delivery,
    attempt: u32,
    span: tracing::Span,
    message: Result<Incoming, String>,
}

fn prepare(spec: &ConsumerSpec, delivery: Delivery) -> Pending {
    let hdrs = delivery.properties.headers().as_ref();
    let attempt = header_int(hdrs, headers::ATTEMPT).unwrap_or(1).max(1) as u32;
    let traceparent = header_str(hdrs, headers::TRACEPARENT);
    let span = tracing::info_span!(
        "consume",
        otel.name = format!("{} process", spec.name),
        otel.kind = "consumer",
        messaging.system = "rabbitmq",
        messaging.consumer = spec.name,
        messaging.message.id = tracing::field::Empty,
        message_type = tracing::field::Empty,
        attempt,
    );
    telemetry::set_parent(&span, traceparent.as_deref());
    let message = serde_json::from_slice::<Envelope<serde_json::Value>>(&delivery.data)
        .map(|envelope| {
            span.record("messaging.message.id", tracing::field::display(envelope.message_id));
            span.record("message_type", envelope.message_type.as_str());
            Incoming { envelope, routing_key: delivery.routing_key.to_string(), attempt }
        })
        .map_err(|e| format!("malformed envelope: {e}"));
    Pending { delivery, attempt, span, message }
}

/// What a consumer works with, fixed for its life.
struct Consumer<H> {
    spec: ConsumerSpec,
    handler: Arc<H>,
    pool: PgPool,
    broker: Broker,
    cfg: MessagingConfig,
}

impl<H: Handler> Consumer<H> {
    async fn consume(&self, shutdown: &CancellationToken, started: &mut Option<impl FnOnce()>) -> anyhow::Result<()> {
        let Consumer { spec, broker, cfg, .. } = self;
        let ch = broker.channel().await?;
        broker.declare_consumer(&ch, spec, &cfg.retry_delays).await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        ch.basic_qos(cfg.prefetch, BasicQosOptions::default()).await?;
        let queue = broker.topology().queue(spec.name);
        let tag = format!("{}-{}", spec.name, Uuid::now_v7());
        let mut stream = ch
            .basic_consume(
                queue.clone().into(),
                tag.clone().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(consumer = spec.name, queue = %queue, "consuming");
        if let Some(f) = started.take() {
            f();
        }
        loop {
            let first = tokio::select! {
                d = stream.next() => d,
                _ = shutdown.cancelled() => {
                    let _ = ch.basic_cancel(tag.clone().into(), Default::default()).await;
                    let _ = ch.close(200, "shutdown".into()).await;
                    return Ok(());
                }
            };
            let Some(first) = first else {
                anyhow::bail!("the consumer stream ended");
            };
            // Take what else is already here (up to the prefetch) and apply it in
            // one transaction: one commit for the batch instead of one per message.
            let mut batch = vec![first?];
            let most = usize::from(self.spec.max_batch.unwrap_or(cfg.prefetch).clamp(1, cfg.prefetch.max(1)));
            while batch.len() < most {
                match stream.next().now_or_never() {
                    Some(Some(d)) => batch.push(d?),
                    _ => break,
                }
            }
            self.handle_batch(&ch, batch).await?;
        }
    }

    async fn handle_batch(&self, ch: &Channel, deliveries: Vec<Delivery>) -> anyhow::Result<()> {
        let spec = &self.spec;
        let started = Instant::now();
        let items: Vec<Pending> = deliveries.into_iter().map(|d| prepare(spec, d)).collect();
        metrics::histogram!("consumer_batch_size", "consumer" => spec.name).record(items.len() as f64);
        let results = match self.apply_batch(&items).await {
            Ok(results) => results,
            // The batch's commit failed (a deferred constraint, a lost
            // connection): nothing was applied. Apply each message on its own so
            // one message's failure is not counted against the others.
            Err(e) if items.len() > 1 => {
                tracing::warn!(consumer = spec.name, error = %e, messages = items.len(), "batch transaction failed, applying one by one");
                let mut results = Vec::with_capacity(items.len());
                for item in &items {
                    results.push(match self.apply_batch(std::slice::from_ref(item)).await {
                        Ok(mut r) => r.pop().unwrap_or(Ok(Outcome::Duplicate)),
                        Err(e) => {
                            Err(HandlerError::new(ErrorKind::Unavailable, anyhow::anyhow!("transaction failed: {e}")))
                        }
                    });
                }
                results
            }
            Err(e) => vec![Err(HandlerError::new(ErrorKind::Unavailable, anyhow::anyhow!("transaction failed: {e}")))],
        };
        for (item, result) in items.into_iter().zip(results) {
            // Never hold `span.enter()` across an await: the span would leak into
            // other tasks polled on this thread.
            let span = item.span.clone();
            self.settle(ch, item.delivery, item.attempt, result, started).instrument(span).await?;
        }
        Ok(())
    }

    /// One transaction for the batch, one savepoint per message: a message that
    /// fails is rolled back alone and the others commit.
    async fn apply_batch(&self, items: &[Pending]) -> sqlx::Result<Vec<Result<Outcome, HandlerError>>> {
        let pool = &self.pool;
        let mut tx = pool.begin().await?;
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            let result = match &item.message {
                Err(reason) => Err(HandlerError::new(ErrorKind::BadRequest, anyhow::anyhow!("{reason}"))),
                Ok(msg) => self.apply(&mut tx, msg).instrument(item.span.clone()).await,
            };
            results.push(result);
        }
        tx.commit().await?;
        Ok(results)
    }

    async fn settle(
        &self,
        ch: &Channel,
        delivery: Delivery,
        attempt: u32,
        result: Result<Outcome, HandlerError>,
        started: Instant,
    ) -> anyhow::Result<()> {
        let Consumer { spec, broker, cfg, .. } = self;
        let outcome = match result {
            Ok(Outcome::Processed) => "processed",
            Ok(Outcome::Duplicate) => {
                tracing::info!("duplicate message skipped");
                "duplicate"
            }
            Err(err) => {
                let last = attempt as usize > cfg.retry_delays.len();
                let target = match err.kind.disposition() {
                    Disposition::Retry if !last => {
                        let delay = cfg.retry_delays[attempt as usize - 1];
                        tracing::warn!(
                            error = format!("{:#}", err.error),
                            retry_in_ms = delay.as_millis() as u64,
                            "handling failed, will retry"
                        );
                        Some((broker.topology().retry_queue(spec.name, delay), attempt + 1, "retried"))
                    }
                    _ => {
                        tracing::error!(error = format!("{:#}", err.error), "handling failed, dead-lettering");
                        None
                    }
                };
                let (queue, next_attempt, outcome) = target
                    .unwrap_or_else(|| (broker.topology().dead_letter_queue(spec.name), attempt, "dead_lettered"));
                let mut h = delivery.properties.headers().clone().unwrap_or_default();
                h.insert(headers::ATTEMPT.into(), AMQPValue::LongInt(next_attempt as i32));
                h.insert(
                    headers::ERROR.into(),
                    AMQPValue::LongString(truncate(&format!("{:#}", err.error), 2000).into()),
                );
                h.insert(
                    headers::ORIGINAL_QUEUE.into(),
                    AMQPValue::LongString(broker.topology().queue(spec.name).into()),
                );
                h.insert(
                    headers::FAILED_AT.into(),
                    AMQPValue::LongString(
                        time::OffsetDateTime::now_utc()
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default()
                            .into(),
                    ),
                );
                let props: BasicProperties = delivery.properties.clone().with_headers(h);
                let confirmed = async {
                    let confirm = ch
                        .basic_publish(
                            "".into(),
                            queue.clone().into(),
                            BasicPublishOptions::default(),
                            &delivery.data,
                            props,
                        )
                        .await?;
                    anyhow::Ok(confirm.await?.is_ack())
                }
                .await;
                match confirmed {
                    Ok(true) => outcome,
                    other => {
                        // Could not park it: hand it back to the queue to be tried again.
                        tracing::warn!(queue = %queue, result = ?other.err().map(|e| e.to_string()), "could not move the failed message, requeueing");
                        delivery.acker.nack(BasicNackOptions { requeue: true, ..Default::default() }).await?;
                        record(spec, "requeued", started);
                        return Ok(());
                    }
                }
            }
        };
        delivery.acker.ack(BasicAckOptions::default()).await?;
        record(spec, outcome, started);
        Ok(())
    }

    /// Inbox + handler inside a savepoint of the batch's transaction.
    async fn apply(&self, tx: &mut PgConnection, msg: &Incoming) -> Result<Outcome, HandlerError> {
        let Consumer { spec, handler, .. } = self;
        let mut sp = sqlx::Connection::begin(&mut *tx).await?;
        let fresh = sqlx::query(
            "INSERT INTO inbox (consumer, message_id, message_type) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
        )
        .bind(spec.name)
        .bind(msg.envelope.message_id)
        .bind(&msg.envelope.message_type)
        .execute(&mut *sp)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            sp.rollback().await?;
            return Ok(Outcome::Duplicate);
        }
        match handler.handle(&mut sp, msg).await {
            Ok(()) => {
                sp.commit().await?;
                Ok(Outcome::Processed)
            }
            Err(e) => {
                sp.rollback().await?;
                Err(e)
            }
        }
    }
}

fn record(spec: &ConsumerSpec, outcome: &'static str, started: Instant) {
    metrics::counter!("consumer_messages_total", "consumer" => spec.name, "outcome" => outcome).increment(1);
    metrics::histogram!("consumer_handle_duration_seconds", "consumer" => spec.name)
        .record(started.elapsed().as_secs_f64());
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
