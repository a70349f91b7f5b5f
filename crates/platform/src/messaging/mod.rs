//! RabbitMQ: the topology, a reconnecting broker handle, the transactional
//! outbox and its relay, consumers with an inbox, retries and dead-lettering.
//!
//! # Topology (all names start with the namespace, `feira` by default)
//! - `<ns>.events`: durable topic exchange every service publishes to; its
//!   alternate exchange `<ns>.unrouted` keeps, in the queue of the same name,
//!   any message no queue was bound for (nothing is silently dropped).
//! - `<ns>.<consumer>`: a consumer's durable quorum queue, bound to the
//!   routing keys it handles.
//! - `<ns>.<consumer>.retry.<ms>ms`: one delay queue per retry delay; a
//!   message waits there (per-queue TTL) and is dead-lettered back into the
//!   consumer's queue.
//! - `<ns>.<consumer>.dlq`: the parked messages of that consumer, with the
//!   error text and attempt count in their headers (`feira dlq`).

pub mod consumer;
pub mod dlq;
pub mod outbox;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;

pub use consumer::{ConsumerSpec, Handler, HandlerError, Incoming};

/// Header names set by feira on messages.
pub mod headers {
    pub const TRACEPARENT: &str = "traceparent";
    /// 1 for the first delivery, incremented by each retry.
    pub const ATTEMPT: &str = "x-feira-attempt";
    /// Why the last attempt failed.
    pub const ERROR: &str = "x-feira-error";
    /// The consumer queue a dead-lettered message came from.
    pub const ORIGINAL_QUEUE: &str = "x-feira-queue";
    pub const FAILED_AT: &str = "x-feira-failed-at";
    pub const REPLAYED_BY: &str = "x-feira-replayed-by";
}

/// Names of exchanges and queues under one namespace.
#[derive(Debug, Clone)]
pub struct Topology {
    namespace: String,
}

impl Topology {
    pub fn new(namespace: impl Into<String>) -> Self {
        Topology { namespace: namespace.into() }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.namespace)
    }

    pub fn unrouted(&self) -> String {
        format!("{}.unrouted", self.namespace)
    }

    pub fn queue(&self, consumer: &str) -> String {
        format!("{}.{consumer}", self.namespace)
    }

    pub fn retry_queue(&self, consumer: &str, delay: Duration) -> String {
        format!("{}.{consumer}.retry.{}ms", self.namespace, delay.as_millis())
    }

    pub fn dead_letter_queue(&self, consumer: &str) -> String {
        format!("{}.{consumer}.dlq", self.namespace)
    }
}

/// A handle on one AMQP connection that reconnects on demand. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    url: String,
    name: String,
    topology: Topology,
    state: Arc<Mutex<BrokerState>>,
}

#[derive(Default)]
struct BrokerState {
    connection: Option<Arc<Connection>>,
    publisher: Option<Channel>,
}

impl Broker {
    /// No connection is opened until one is needed.
    pub fn new(url: impl Into<String>, connection_name: impl Into<String>, topology: Topology) -> Self {
        Broker {
            url: url.into(),
            name: connection_name.into(),
            topology,
            state: Arc::new(Mutex::new(BrokerState::default())),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    async fn connection(&self, state: &mut BrokerState) -> lapin::Result<Arc<Connection>> {
        if let Some(c) = &state.connection
            && c.status().connected()
        {
            return Ok(c.clone());
        }
        state.publisher = None;
        let props = ConnectionProperties::default().with_connection_name(LongString::from(self.name.clone()));
        let conn = tokio::time::timeout(Duration::from_secs(5), Connection::connect(&self.url, props))
            .await
            .map_err(|_| lapin::Error::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
        let conn = Arc::new(conn);
        tracing::info!(connection = %self.name, "connected to the broker");
        state.connection = Some(conn.clone());
        Ok(conn)
    }

    /// A new channel on the (re)connected connection.
    pub async fn channel(&self) -> lapin::Result<Channel> {
        let mut state = self.state.lock().await;
        let conn = self.connection(&mut state).await?;
        conn.create_channel().await
    }

    /// A channel with publisher confirms on, shared by the publishers of this
    /// handle and replaced when it breaks.
    pub async fn publisher(&self) -> lapin::Result<Channel> {
        let mut state = self.state.lock().await;
        if let Some(ch) = &state.publisher
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        let conn = self.connection(&mut state).await?;
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        state.publisher = Some(ch.clone());
        Ok(ch)
    }

    /// Forgets the publisher channel after an error, so the next call makes a new one.
    pub async fn reset_publisher(&self) {
        self.state.lock().await.publisher = None;
    }

    /// True when a connection is open or can be opened now.
    pub async fn is_ready(&self) -> bool {
        let mut state = self.state.lock().await;
        self.connection(&mut state).await.is_ok()
    }

    pub async fn close(&self) {
        let mut state = self.state.lock().await;
        if let Some(ch) = state.publisher.take()
            && ch.status().connected()
        {
            let _ = ch.close(200, "shutdown".into()).await;
        }
        if let Some(c) = state.connection.take() {
            let _ = c.close(200, "shutdown".into()).await;
        }
    }

    /// Declares the events exchange and its unrouted keeper. Idempotent.
    pub async fn declare_events_exchange(&self, ch: &Channel) -> lapin::Result<()> {
        let t = &self.topology;
        ch.exchange_declare(t.unrouted().into(), ExchangeKind::Fanout, durable_exchange(), FieldTable::default())
            .await?;
        let mut args = quorum_args();
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(7 * 24 * 3600 * 1000));
        ch.queue_declare(t.unrouted().into(), durable_queue(), args).await?;
        ch.queue_bind(
            t.unrouted().into(),
            t.unrouted().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let mut args = FieldTable::default();
        args.insert("alternate-exchange".into(), AMQPValue::LongString(t.unrouted().into()));
        ch.exchange_declare(t.events_exchange().into(), ExchangeKind::Topic, durable_exchange(), args).await
    }

    /// Declares a consumer's queue, its delay queues and its dead-letter
    /// queue, and binds it to its routing keys. Idempotent.
    pub async fn declare_consumer(
        &self,
        ch: &Channel,
        spec: &ConsumerSpec,
        retry_delays: &[Duration],
    ) -> lapin::Result<()> {
        self.declare_events_exchange(ch).await?;
        let t = &self.topology;
        let queue = t.queue(spec.name);
        let dlq = t.dead_letter_queue(spec.name);
        ch.queue_declare(dlq.clone().into(), durable_queue(), quorum_args()).await?;
        // Safety net: a message that keeps crashing its consumer (so it is
        // never acknowledged) is parked after 20 deliveries instead of looping.
        let mut args = quorum_args();
        args.insert("x-delivery-limit".into(), AMQPValue::LongInt(20));
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
        args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(dlq.clone().into()));
        ch.queue_declare(queue.clone().into(), durable_queue(), args).await?;
        for key in spec.bindings {
            ch.queue_bind(
                queue.clone().into(),
                t.events_exchange().into(),
                (*key).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        for delay in retry_delays {
            let mut args = quorum_args();
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(delay.as_millis() as i64));
            args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
            args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(queue.clone().into()));
            // Expired messages move back at least once, never lost on the way.
            args.insert("x-dead-letter-strategy".into(), AMQPValue::LongString("at-least-once".into()));
            args.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
            ch.queue_declare(t.retry_queue(spec.name, *delay).into(), durable_queue(), args).await?;
        }
        Ok(())
    }

    /// Deletes every exchange and queue of the given consumers and the events
    /// exchange (tests clean up their namespace with it).
    pub async fn delete_topology(&self, consumers: &[ConsumerSpec], retry_delays: &[Duration]) -> anyhow::Result<()> {
        let ch = self.channel().await.context("open a channel")?;
        let t = &self.topology;
        let mut queues = vec![t.unrouted()];
        for c in consumers {
            queues.push(t.queue(c.name));
            queues.push(t.dead_letter_queue(c.name));
            queues.extend(retry_delays.iter().map(|d| t.retry_queue(c.name, *d)));
        }
        for q in queues {
            ch.queue_delete(q.into(), Default::default()).await?;
        }
        for x in [t.events_exchange(), t.unrouted()] {
            ch.exchange_delete(x.into(), Default::default()).await?;
        }
        let _ = ch.close(200, "done".into()).await;
        Ok(())
    }
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions { durable: true, ..Default::default() }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions { durable: true, ..Default::default() }
}

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    args
}

/// Reads a string header, whatever AMQP string type carried it.
pub fn header_str(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    let value = headers?.inner().get(&ShortString::from(name))?;
    match value {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// Reads an integer header, whatever AMQP integer type carried it.
pub fn header_int(headers: Option<&FieldTable>, name: &str) -> Option<i64> {
    let value = headers?.inner().get(&ShortString::from(name))?;
    match value {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortShortUInt(n) => Some(i64::from(*n)),
        _ => None,
    }
}
