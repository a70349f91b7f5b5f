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
