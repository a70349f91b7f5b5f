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
        crate::db::connect(&c.service(spec.name)?.database, 5, spec.migrator).await
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
        for spec in &self.specs {
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
