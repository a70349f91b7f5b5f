//! Test helpers: a private database per service and a private broker
//! namespace per test, against the real PostgreSQL and RabbitMQ, removed when
//! the [`TestEnv`] is dropped (even when the test panics).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::messaging::{Broker, ConsumerSpec, Topology};
use crate::service::{self, ServiceSpec};

/// One test's slice of the shared PostgreSQL and RabbitMQ.
pub struct TestEnv {
    pub namespace: String,
    pub vars: BTreeMap<String, String>,
    specs: Vec<ServiceSpec>,
    cleaned: bool,
}

/// A service running inside the test process.
pub struct RunningService {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<anyhow::Result<()>>,
}

impl RunningService {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Graceful stop from a `Drop` (a test's app going away, perhaps while
    /// a failed test unwinds): cancels, then waits up to 10 s for the
    /// service's relay and consumers to stop, so nothing re-declares the
    /// namespace after the environment deleted it. Never panics; waits only
    /// on a multi-thread runtime (elsewhere it cannot block).
    pub fn stop_in_drop(self) {
        self.shutdown.cancel();
        if let Ok(rt) = tokio::runtime::Handle::try_current()
            && rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        {
            tokio::task::block_in_place(|| {
                let _ = rt.block_on(tokio::time::timeout(std::time::Duration::from_secs(10), self.handle));
            });
        }
    }

    /// Graceful stop, as on SIGTERM.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.handle.await?
    }
}

impl TestEnv {
    /// A fresh namespace and one database per service. Base URLs come from
    /// `FEIRA_DATABASE_URL` / `FEIRA_AMQP_URL` when set, else the local defaults.
    pub fn new(specs: &[ServiceSpec]) -> Self {
        let namespace = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut vars = BTreeMap::new();
        for key in ["FEIRA_DATABASE_URL", "FEIRA_AMQP_URL"] {
            if let Ok(v) = std::env::var(key) {
                vars.insert(key.to_string(), v);
            }
        }
        vars.insert("FEIRA_AMQP_NAMESPACE".into(), namespace.clone());
        vars.insert("FEIRA_RETRY_DELAYS".into(), "200ms,400ms".into());
        vars.insert("FEIRA_OUTBOX_SWEEP_INTERVAL".into(), "200ms".into());
        vars.insert("FEIRA_SHUTDOWN_GRACE".into(), "5s".into());
        let base = Config::from_map(&vars, &[], &[]).map(|c| c.database).ok();
        for spec in specs {
            let up = spec.name.to_uppercase().replace('-', "_");
            vars.insert(format!("FEIRA_{up}_PORT"), "0".into());
            if let Some(base) = &base {
                let db = format!("{namespace}_{}", spec.name.replace('-', "_"));
                vars.insert(format!("FEIRA_{up}_DATABASE_URL"), url_of(base, &db));
            }
        }
        TestEnv { namespace, vars, specs: specs.to_vec(), cleaned: false }
    }

    /// Gives every service a free port now (instead of port 0), so that
    /// services can be told each other's URLs before they start; returns
    /// `(name, port)` of each.
    pub fn assign_free_ports(&mut self) -> Vec<(&'static str, u16)> {
        let mut ports = Vec::new();
        // Hold every listener until all are chosen, so no two get one port.
        let mut held = Vec::new();
        for spec in &self.specs {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
            let port = listener.local_addr().expect("a bound address").port();
            held.push(listener);
            ports.push((spec.name, port));
        }
        drop(held);
        for (name, port) in &ports {
            let up = name.to_uppercase().replace('-', "_");
            self.vars.insert(format!("FEIRA_{up}_PORT"), port.to_string());
        }
        ports
    }

    /// The base URL of a service whose port was assigned.
    pub fn url_of(&self, service: &str) -> String {
        let up = service.to_uppercase().replace('-', "_");
        let port = self.vars.get(&format!("FEIRA_{up}_PORT")).cloned().unwrap_or_default();
        format!("http://127.0.0.1:{port}")
    }

    /// Overrides a variable (before [`TestEnv::config`] is read).
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.vars.insert(name.to_string(), value.into());
        self
    }

    pub fn config(&self) -> Config {
        let services: Vec<(&str, u16)> = self.specs.iter().map(|s| (s.name, s.default_port)).collect();
        let extra: Vec<crate::config::Var> = self.specs.iter().flat_map(|s| s.vars.iter().copied()).collect();
        match Config::from_map(&self.vars, &services, &extra) {
            Ok(c) => c,
            Err(e) => panic!("test configuration is invalid: {e}"),
        }
    }

    pub fn broker(&self) -> Broker {
        let c = self.config();
        Broker::new(c.amqp_url, "feira-test", Topology::new(self.namespace.clone()))
    }

    /// Starts a service in this process, as `feira run <name>` would, and
    /// waits until `/health/ready` answers 200 (its consumers are consuming).
    pub async fn spawn(&self, spec: &ServiceSpec) -> anyhow::Result<RunningService> {
        let shutdown = CancellationToken::new();
        let svc = service::start(spec, Arc::new(self.config()), shutdown.clone()).await?;
        let addr = svc.local_addr();
        let handle = tokio::spawn((spec.run)(svc));
        let running = RunningService { addr, shutdown, handle };
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while !is_ready(addr).await {
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("{} did not become ready within 30 s", spec.name);
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        Ok(running)
    }

    /// A pool on a service's database (created and migrated if needed).
    pub async fn db(&self, spec: &ServiceSpec) -> anyhow::Result<sqlx::PgPool> {
        let c = self.config();
        let migrator = spec.migrator.ok_or_else(|| anyhow::anyhow!("{} has no database", spec.name))?;
        crate::db::connect(&c.service(spec.name)?.database, 5, migrator).await
    }

    fn consumers(&self) -> Vec<ConsumerSpec> {
        self.specs.iter().flat_map(|s| s.consumers.iter().copied()).collect()
    }

    /// Drops the databases and deletes the namespace's exchanges and queues.
    pub async fn cleanup(&mut self) -> anyhow::Result<()> {
        if self.cleaned {
            return Ok(());
        }
        self.cleaned = true;
        let c = self.config();
        for spec in self.specs.iter().filter(|s| s.migrator.is_some()) {
            crate::db::drop_database(&c.service(spec.name)?.database).await?;
        }
        let broker = self.broker();
        broker.delete_topology(&self.consumers(), &c.messaging.retry_delays).await?;
        broker.close().await;
        Ok(())
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let mut this = TestEnv {
            namespace: self.namespace.clone(),
            vars: self.vars.clone(),
            specs: self.specs.clone(),
            cleaned: false,
        };
        self.cleaned = true;
        // Drop cannot await: clean up on a thread with its own runtime.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt
                && let Err(e) = rt.block_on(this.cleanup())
            {
                eprintln!("test cleanup failed: {e:#}");
            }
        });
        let _ = done.join();
    }
}

/// `GET /health/ready` answers 200 (plain HTTP/1.1 over a TCP socket, so the
/// platform needs no HTTP client).
async fn is_ready(addr: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let req = format!("GET /health/ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).await.is_ok() && buf.ends_with(b"200")
}

fn url_of(base: &sqlx::postgres::PgConnectOptions, db: &str) -> String {
    let user = base.get_username();
    format!("postgres://{user}@{}:{}/{db}", base.get_host(), base.get_port())
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

// Read replica ----------------------------------------------------------------

use sqlx::postgres::PgConnectOptions;

/// Port of the hot standby `scripts/pg-replica.sh` runs for tests.
pub const REPLICA_PORT: u16 = 5433;

/// A hot standby of the test PostgreSQL server, shared by every test on the
/// machine. Replication is asynchronous: a test that reads its own writes
/// from the replica first calls [`ReplicaInfo::wait_replicated`].
#[derive(Debug, Clone)]
pub struct ReplicaInfo {
    pub port: u16,
    /// The replica's `postgres` database; [`ReplicaInfo::database`] for another.
    pub options: PgConnectOptions,
    /// The primary it streams from.
    pub primary: PgConnectOptions,
}

impl ReplicaInfo {
    /// A database of the replica (every database of the primary is on it,
    /// once its creation is replayed).
    pub fn database(&self, name: &str) -> PgConnectOptions {
        self.options.clone().database(name)
    }

    /// The URL of a database of the replica, e.g. for
    /// `FEIRA_<SERVICE>_READ_DATABASE_URL`.
    pub fn url(&self, database: &str) -> String {
        url_of(&self.options, database)
    }

    /// Waits until the replica has replayed everything the primary had
    /// written when this was called.
    pub async fn wait_replicated(&self) -> anyhow::Result<()> {
        wait_replicated(&self.primary, &self.options).await
    }
}

/// Starts (once per machine; a no-op when it already runs) the hot standby of
/// the primary named by `FEIRA_DATABASE_URL` (default 127.0.0.1:5432) on
/// 127.0.0.1:[`REPLICA_PORT`], with `scripts/pg-replica.sh` (which serializes
/// concurrent test processes with a file lock). The first start takes a base
/// backup of the whole cluster: seconds, and about the cluster's size on disk.
pub async fn replica() -> anyhow::Result<ReplicaInfo> {
    use anyhow::Context as _;
    static STARTED: tokio::sync::OnceCell<u16> = tokio::sync::OnceCell::const_new();

    let primary = match std::env::var("FEIRA_DATABASE_URL") {
        Ok(url) => url.parse::<PgConnectOptions>().context("FEIRA_DATABASE_URL")?,
        Err(_) => Config::from_map(&BTreeMap::new(), &[], &[])?.database,
    };
    let port = *STARTED
        .get_or_try_init(|| async {
            let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-replica.sh");
            let out = tokio::process::Command::new("bash")
                .arg(&script)
                .arg("start")
                .arg(REPLICA_PORT.to_string())
                .env("PG_PRIMARY_HOST", primary.get_host())
                .env("PG_PRIMARY_PORT", primary.get_port().to_string())
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .with_context(|| format!("run {}", script.display()))?;
            if !out.status.success() {
                anyhow::bail!(
                    "{} start failed ({}): {}",
                    script.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let port = String::from_utf8_lossy(&out.stdout).trim().parse::<u16>();
            port.with_context(|| format!("{} start printed no port", script.display()))
        })
        .await?;
    let options =
        PgConnectOptions::new().host("127.0.0.1").port(port).username(primary.get_username()).database("postgres");
    Ok(ReplicaInfo { port, options, primary: primary.database("postgres") })
}

/// Waits (up to 30 s) until `replica` has replayed the WAL `primary` had
/// written when this was called: every transaction committed before the call
/// is then visible on the replica.
pub async fn wait_replicated(primary: &PgConnectOptions, replica: &PgConnectOptions) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use sqlx::Connection as _;

    let mut conn = sqlx::PgConnection::connect_with(&primary.clone().database("postgres"))
        .await
        .context("connect to the primary")?;
    let target: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text").fetch_one(&mut conn).await?;
    conn.close().await?;
    let mut conn = sqlx::PgConnection::connect_with(&replica.clone().database("postgres"))
        .await
        .context("connect to the replica")?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (caught_up, replayed): (Option<bool>, Option<String>) =
            sqlx::query_as("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn, pg_last_wal_replay_lsn()::text")
                .bind(&target)
                .fetch_one(&mut conn)
                .await?;
        if caught_up == Some(true) {
            conn.close().await?;
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "the replica replayed WAL up to {} but not to {target} within 30 s (is it a standby of this primary?)",
                replayed.as_deref().unwrap_or("nothing")
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

impl TestEnv {
    /// Points every service's `FEIRA_<SERVICE>_READ_DATABASE_URL` at its own
    /// database on `replica`, as production does with a streaming replica.
    /// The database appears there once its creation is replayed: call
    /// [`ReplicaInfo::wait_replicated`] after the service started (or wrote)
    /// and before asserting on what it reads.
    pub fn read_from(&mut self, replica: &ReplicaInfo) -> &mut Self {
        for spec in self.specs.clone() {
            let up = spec.name.to_uppercase().replace('-', "_");
            let Some(db) =
                self.config().service(spec.name).ok().and_then(|s| s.database.get_database().map(str::to_string))
            else {
                continue;
            };
            self.vars.insert(format!("FEIRA_{up}_READ_DATABASE_URL"), replica.url(&db));
        }
        self
    }
}

// Redis -------------------------------------------------------------------------

/// One test's slice of the shared Redis: a unique key prefix (`t<hex>:`)
/// whose keys are deleted when this is dropped (even when the test panics).
pub struct RedisPrefix {
    pub url: String,
    pub prefix: String,
}

impl RedisPrefix {
    /// A fresh prefix on `FEIRA_REDIS_URL` (default `redis://127.0.0.1:6379`).
    pub fn new() -> Self {
        let url = std::env::var("FEIRA_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
        let prefix = format!("t{}:", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        RedisPrefix { url, prefix }
    }

    /// Deletes every key under the prefix (SCAN MATCH + DEL); returns how many.
    pub async fn cleanup(&self) -> anyhow::Result<usize> {
        delete_redis_keys(&self.url, &self.prefix).await
    }
}

impl Default for RedisPrefix {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        // Drop cannot await: clean up on a thread with its own runtime.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt
                && let Err(e) = rt.block_on(delete_redis_keys(&url, &prefix))
            {
                eprintln!("redis cleanup of {prefix}* failed: {e:#}");
            }
        });
        let _ = done.join();
    }
}

/// Deletes every key that starts with `prefix`; returns how many.
pub async fn delete_redis_keys(url: &str, prefix: &str) -> anyhow::Result<usize> {
    let client = redis::Client::open(url)?;
    let mut con = tokio::time::timeout(std::time::Duration::from_secs(5), client.get_multiplexed_async_connection())
        .await
        .map_err(|_| anyhow::anyhow!("redis at {url} did not answer within 5 s"))??;
    let pattern =
        format!("{}*", prefix.replace('\\', "\\\\").replace('*', "\\*").replace('?', "\\?").replace('[', "\\["));
    let mut cursor = 0u64;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut con)
            .await?;
        if !keys.is_empty() {
            deleted += redis::cmd("DEL").arg(&keys).query_async::<usize>(&mut con).await?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

// Broker ------------------------------------------------------------------------
//
// Publishing as a service's outbox relay does, private subscriptions to the
// events exchange, and a look at a queue's consumers and depth.

use contracts::{Envelope, Message};
use lapin::message::Delivery;
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};

/// Seconds a [`Subscription`] waits for a message before the test fails.
pub const SUBSCRIPTION_WAIT_SECS: u64 = 20;

/// The `app_id` of the messages the tests publish (a relay puts its
/// service's name there; nothing reads it).
pub const TEST_APP_ID: &str = "feira-test";

/// One message as it travels: its id, type, routing key and body. Publishing
/// the same `RawMessage` twice is a redelivery (same message id).
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub message_id: uuid::Uuid,
    pub message_type: &'static str,
    pub routing_key: &'static str,
    pub body: Vec<u8>,
}

impl RawMessage {
    /// `envelope` serialized, with its message id, type and routing key.
    pub fn of<T: Message>(envelope: &Envelope<T>) -> Self {
        RawMessage {
            message_id: envelope.message_id,
            message_type: T::TYPE,
            routing_key: T::ROUTING_KEY,
            body: serde_json::to_vec(envelope).expect("serialize the envelope"),
        }
    }
}

/// One message to publish, borrowed.
struct Outgoing<'a> {
    routing_key: &'a str,
    message_id: &'a str,
    message_type: &'a str,
    traceparent: Option<String>,
    body: &'a [u8],
}

/// Publishes `envelope` to the events exchange as the outbox relay does
/// (message id, type, JSON, persistent, `traceparent` and
/// `x-feira-attempt: 1` headers, its routing key) and waits for the broker's
/// confirm. Panics when the broker cannot be reached or refuses it.
pub async fn publish<T: Message>(broker: &Broker, envelope: &Envelope<T>) {
    let body = serde_json::to_vec(envelope).expect("serialize the envelope");
    let message_id = envelope.message_id.to_string();
    let out = Outgoing {
        routing_key: T::ROUTING_KEY,
        message_id: &message_id,
        message_type: T::TYPE,
        traceparent: envelope.traceparent.clone(),
        body: &body,
    };
    publish_confirmed(broker, &[out]).await;
}

/// Publishes any `body` (malformed ones included) with the properties of
/// [`publish`], and waits for the broker's confirm.
pub async fn publish_raw(broker: &Broker, routing_key: &str, message_id: &str, message_type: &str, body: &[u8]) {
    let out = Outgoing { routing_key, message_id, message_type, traceparent: None, body };
    publish_confirmed(broker, &[out]).await;
}

/// Publishes every message as [`publish`] does, all at once (pipelined, in
/// order), then waits for the broker's confirms.
pub async fn publish_all(broker: &Broker, messages: &[RawMessage]) {
    let ids: Vec<String> = messages.iter().map(|m| m.message_id.to_string()).collect();
    let out: Vec<Outgoing<'_>> = messages
        .iter()
        .zip(&ids)
        .map(|(m, id)| Outgoing {
            routing_key: m.routing_key,
            message_id: id,
            message_type: m.message_type,
            traceparent: None,
            body: &m.body,
        })
        .collect();
    publish_confirmed(broker, &out).await;
}

async fn publish_confirmed(broker: &Broker, messages: &[Outgoing<'_>]) {
    use crate::messaging::headers;
    let exchange = broker.topology().events_exchange();
    let ch = broker.publisher().await.unwrap_or_else(|e| panic!("open a publisher channel: {e}"));
    let mut confirms = Vec::with_capacity(messages.len());
    for m in messages {
        let mut h = FieldTable::default();
        if let Some(tp) = crate::telemetry::current_traceparent().or_else(|| m.traceparent.clone()) {
            h.insert(headers::TRACEPARENT.into(), AMQPValue::LongString(tp.into()));
        }
        h.insert(headers::ATTEMPT.into(), AMQPValue::LongInt(1));
        let props = lapin::BasicProperties::default()
            .with_message_id(m.message_id.into())
            .with_type(m.message_type.into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_app_id(TEST_APP_ID.into())
            .with_timestamp(time::OffsetDateTime::now_utc().unix_timestamp() as u64)
            .with_headers(h);
        let confirm = ch
            .basic_publish(exchange.clone().into(), m.routing_key.into(), BasicPublishOptions::default(), m.body, props)
            .await
            .unwrap_or_else(|e| panic!("publish {} {} to {exchange}: {e}", m.message_type, m.message_id));
        confirms.push(confirm);
    }
    for (m, confirm) in messages.iter().zip(confirms) {
        let confirm = confirm
            .await
            .unwrap_or_else(|e| panic!("no publisher confirm for {} {}: {e}", m.message_type, m.message_id));
        assert!(
            confirm.is_ack(),
            "the broker refused {} {} (routing key {})",
            m.message_type,
            m.message_id,
            m.routing_key
        );
    }
}

/// A private queue bound to some routing keys on the events exchange:
/// exclusive and auto-deleted, gone when its channel closes.
pub struct Subscription {
    channel: lapin::Channel,
    queue: String,
    routing_keys: Vec<String>,
}

/// Subscribes to every message published on `routing_keys` (topic patterns
/// allowed) from now on.
pub async fn subscribe(broker: &Broker, routing_keys: &[&str]) -> Subscription {
    let channel = broker.channel().await.unwrap_or_else(|e| panic!("open a channel: {e}"));
    let q = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("declare a private queue: {e}"));
    let queue = q.name().to_string();
    for key in routing_keys {
        channel
            .queue_bind(
                queue.clone().into(),
                broker.topology().events_exchange().into(),
                (*key).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("bind the private queue to {key}: {e}"));
    }
    Subscription { channel, queue, routing_keys: routing_keys.iter().map(|k| k.to_string()).collect() }
}

impl Subscription {
    /// The private queue's name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The next message if one is there now.
    pub async fn try_next(&self) -> Option<Delivery> {
        self.channel
            .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap_or_else(|e| panic!("basic.get on the subscription to {}: {e}", self.keys()))
            .map(|m| m.delivery)
    }

    /// The next message; panics when none arrives within
    /// [`SUBSCRIPTION_WAIT_SECS`].
    pub async fn next(&self) -> Delivery {
        self.wait(&format!("a message on {}", self.keys())).await
    }

    /// The next message's envelope; panics when it is not an `Envelope<T>`.
    pub async fn next_envelope<T: serde::de::DeserializeOwned>(&self) -> Envelope<T> {
        let delivery = self.next().await;
        serde_json::from_slice(&delivery.data)
            .unwrap_or_else(|e| panic!("a message on {} is not an envelope of its type: {e}", self.keys()))
    }

    /// The next `n` messages, in the order they arrived; each may take up to
    /// [`SUBSCRIPTION_WAIT_SECS`].
    pub async fn take(&self, n: usize) -> Vec<Delivery> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            got.push(self.wait(&format!("message {} of {n} on {}", got.len() + 1, self.keys())).await);
        }
        got
    }

    async fn wait(&self, what: &str) -> Delivery {
        eventually(SUBSCRIPTION_WAIT_SECS, what, || self.try_next()).await
    }

    fn keys(&self) -> String {
        self.routing_keys.join(", ")
    }
}

/// How many consumers `queue` has, or `None` when it does not exist (or the
/// broker cannot be reached).
pub async fn consumers_of(broker: &Broker, queue: &str) -> Option<u32> {
    passive_declare(broker, queue).await.map(|q| q.consumer_count())
}

/// Ready messages in `queue`, or `None` when it does not exist.
pub async fn queue_depth(broker: &Broker, queue: &str) -> Option<u32> {
    passive_declare(broker, queue).await.map(|q| q.message_count())
}

/// A passive declare closes its channel when the queue is missing, so it
/// gets a channel of its own.
async fn passive_declare(broker: &Broker, queue: &str) -> Option<lapin::Queue> {
    let ch = broker.channel().await.ok()?;
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let q = ch.queue_declare(queue.into(), passive, FieldTable::default()).await.ok();
    let _ = ch.close(200, "done".into()).await;
    q
}

impl RunningService {
    /// Waits (up to `secs`, else panics) until the service answers ready and
    /// `queue` has a consumer. A consumer declares its queue, binds it, then
    /// consumes: a consumer on the queue means it is bound (an existing queue
    /// alone does not: a message published between its declare and its bind
    /// goes to the unrouted queue).
    pub async fn wait_consuming(&self, broker: &Broker, queue: &str, secs: u64) {
        let addr = self.addr;
        eventually(secs, &format!("the service ready and a consumer on {queue}"), || async move {
            (is_ready(addr).await && consumers_of(broker, queue).await? > 0).then_some(())
        })
        .await;
    }
}

// HTTP answers ----------------------------------------------------------------

/// An HTTP answer, read once, with the checks API tests make on it.
#[derive(Debug)]
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    /// The body as JSON, or `Null` when it is not JSON.
    pub json: serde_json::Value,
}

impl Answer {
    pub async fn of(res: reqwest::Result<reqwest::Response>) -> Answer {
        let res = res.expect("the service answers");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("the answer has a body");
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Answer { status, headers, text, json }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn content_type(&self) -> &str {
        self.header(reqwest::header::CONTENT_TYPE.as_str()).unwrap_or_default()
    }

    pub fn location(&self) -> Option<&str> {
        self.header(reqwest::header::LOCATION.as_str())
    }

    pub fn is_problem(&self) -> bool {
        self.content_type().starts_with(crate::error::PROBLEM_JSON)
    }

    /// The `field` of every entry of a problem's `errors`, sorted.
    pub fn error_fields(&self) -> Vec<String> {
        let mut fields: Vec<String> = self.json["errors"]
            .as_array()
            .map(|errors| errors.iter().filter_map(|e| e["field"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        fields.sort();
        fields
    }

    /// The answer has this status; its JSON body.
    #[track_caller]
    pub fn expect(&self, status: reqwest::StatusCode) -> &serde_json::Value {
        assert_eq!(self.status, status, "unexpected status: {self:?}");
        &self.json
    }

    /// The answer is an RFC 9457 problem with this status, in the header and
    /// in the body.
    #[track_caller]
    pub fn assert_problem(&self, status: reqwest::StatusCode) {
        assert_eq!(self.status, status, "unexpected status: {self:?}");
        assert!(self.is_problem(), "expected application/problem+json: {self:?}");
        assert_eq!(self.json["status"], serde_json::json!(status.as_u16()), "the problem's status: {self:?}");
        assert!(self.json["title"].is_string(), "a problem has a title: {self:?}");
        assert!(self.json["type"].is_string(), "a problem has a type: {self:?}");
    }
}
