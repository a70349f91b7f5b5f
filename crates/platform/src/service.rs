//! What a service is to the `feira` binary, and the runtime it gets.
//!
//! A service crate exports one [`ServiceSpec`]: its name, default port,
//! migrations, consumers and a `run` function. [`start`] prepares what the
//! service needs (its database, created and migrated; its broker connection;
//! its bound listener) and `run` adds only the domain: its router, its
//! consumers' handlers, its relay.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::http::idempotency::IdempotencyState;
use crate::messaging::{Broker, ConsumerSpec, Handler, Topology, consumer, outbox};

pub type RunFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// A deployable target backed by a database.
#[derive(Clone, Copy)]
pub struct ServiceSpec {
    pub name: &'static str,
    pub default_port: u16,
    /// The service's migrations; `None` for a stateless target (the
    /// gateway, a simulator), which gets no database at all.
    pub migrator: Option<&'static sqlx::migrate::Migrator>,
    /// The service's OpenAPI document, without starting it.
    pub openapi: fn() -> utoipa::openapi::OpenApi,
    /// The service's own `FEIRA_<SERVICE>_*` settings beyond port and
    /// databases, with defaults (read with `Config::var` / `Config::duration`).
    pub vars: &'static [crate::config::Var],
    /// Every queue the service consumes (for `feira dlq`).
    pub consumers: &'static [ConsumerSpec],
    pub run: fn(Service) -> RunFuture,
}

/// The runtime handed to a service's `run`.
pub struct Service {
    pub name: &'static str,
    pub config: Arc<Config>,
    pub db: PgPool,
    /// Read-only queries: the replica of `FEIRA_<SERVICE>_READ_DATABASE_URL`,
    /// or the same pool as `db`. A write's own answer must read from `db`.
    pub db_read: PgPool,
    pub broker: Broker,
    pub shutdown: CancellationToken,
    listener: TcpListener,
    /// No database: readiness does not check one.
    stateless: bool,
    tasks: TaskTracker,
    /// Consumers that have not yet declared their queues and started.
    consumers_starting: Arc<AtomicUsize>,
}

/// Creates and migrates the service's database, opens its broker handle and
/// binds its port. Fails with the reason when any of them is impossible.
pub async fn start(spec: &ServiceSpec, config: Arc<Config>, shutdown: CancellationToken) -> anyhow::Result<Service> {
    // Install the recorder first, so metrics touched while starting count.
    crate::http::metrics_handle();
    let sc = config.service(spec.name)?;
    let db = match spec.migrator {
        Some(migrator) => crate::db::connect(&sc.database, config.database_max_connections, migrator)
            .await
            .with_context(|| format!("prepare the {} database", spec.name))?,
        // Never connected: a stateless service must not use it.
        None => crate::db::pool(&sc.database, 1),
    };
    let db_read = match &sc.read_database {
        Some(replica) => crate::db::pool(replica, config.database_max_connections),
        None => db.clone(),
    };
    let broker = Broker::new(
        config.amqp_url.clone(),
        format!("feira-{}", spec.name),
        Topology::new(config.messaging.namespace.clone()),
    );
    let addr = SocketAddr::new(config.bind_host, sc.port);
    let listener = TcpListener::bind(addr).await.with_context(|| format!("bind {addr} for {}", spec.name))?;
    Ok(Service {
        name: spec.name,
        config,
        db,
        db_read,
        broker,
        shutdown,
        listener,
        stateless: spec.migrator.is_none(),
        tasks: TaskTracker::new(),
        consumers_starting: Arc::new(AtomicUsize::new(0)),
    })
}

impl Service {
    /// The address the service listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::new(self.config.bind_host, 0))
    }

    /// State for the `Idempotency-Key` middleware.
    pub fn idempotency(&self) -> IdempotencyState {
        IdempotencyState {
            pool: self.db.clone(),
            ttl: self.config.http.idempotency_ttl,
            body_limit: self.config.http.body_limit,
        }
    }

    /// Runs one of the service's own background loops; it should stop when
    /// `self.shutdown` is cancelled, and `serve` waits for it (within the
    /// grace period) like the relay and the consumers.
    pub fn spawn_task<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Runs the outbox relay of this service's database until shutdown.
    pub fn spawn_outbox_relay(&self) {
        self.tasks.spawn(outbox::relay(
            self.name,
            self.db.clone(),
            self.broker.clone(),
            self.config.messaging.clone(),
            self.shutdown.clone(),
        ));
    }

    /// Consumes `spec`'s queue with `handler` until shutdown.
    /// The service is not ready until the consumer has declared its queues
    /// and started consuming once.
    pub fn spawn_consumer<H: Handler>(&self, spec: ConsumerSpec, handler: H) {
        self.consumers_starting.fetch_add(1, Ordering::AcqRel);
        let starting = self.consumers_starting.clone();
        let started = move || {
            starting.fetch_sub(1, Ordering::AcqRel);
        };
        self.tasks.spawn(consumer::run(
            spec,
            Arc::new(handler),
            self.db.clone(),
            self.broker.clone(),
            self.config.messaging.clone(),
            self.shutdown.clone(),
            started,
        ));
    }

    /// Serves `api` (wrapped by [`crate::http::app`]) until shutdown, then
    /// lets in-flight requests finish and waits for the background tasks
    /// (relay, consumers) to stop, within the configured grace period.
    pub async fn serve(self, api: Router, openapi: utoipa::openapi::OpenApi) -> anyhow::Result<()> {
        let app = self.scaffold(api, openapi);
        self.serve_router(app).await
    }

    /// Like [`Service::serve`], but the requests `hot` claims skip the
    /// scaffold's middleware (span, request id, RED metrics, timeout, run to
    /// completion, problem+json rewriting) and go straight to its service,
    /// which then owns those concerns. For a request path that must be as
    /// lean as possible (the gateway's proxy); the scaffold's own endpoints
    /// (`/health/*`, `/metrics`, `/openapi.json`, `/docs`) and every path
    /// `hot` does not claim are served by `api` as usual. See
    /// docs/adr/0020-gateway-hot-path.md.
    pub async fn serve_with_hot_path(
        self,
        api: Router,
        openapi: utoipa::openapi::OpenApi,
        hot: crate::http::HotPath,
    ) -> anyhow::Result<()> {
        let shards = hot.shards;
        let app = self.scaffold(api, openapi);
        if shards == 0 {
            let app = Router::new().fallback_service(crate::http::dispatch(app, hot, None));
            return self.serve_router(app).await;
        }
        let app = crate::http::dispatch(app, hot, Some(tokio::runtime::Handle::current()));
        let finish = self.finish();
        let (name, shutdown) = (self.name, self.shutdown.clone());
        // One acceptor hands each connection to the shard with the fewest
        // open ones (crate::accept).
        let (spread, inboxes) = crate::accept::spread(shards);
        let mut running = futures_util::stream::FuturesUnordered::new();
        for (i, inbox) in inboxes.into_iter().enumerate() {
            match serve_shard(name, i, inbox, app.clone(), shutdown.clone()) {
                Ok(shard) => running.push(shard),
                Err(e) => {
                    shutdown.cancel();
                    return Err(e);
                }
            }
        }
        let acceptor = tokio::spawn(spread.run(self.listener, shutdown.clone()));
        let mut failed = None;
        while let Some(result) = futures_util::StreamExt::next(&mut running).await {
            let result = result.unwrap_or_else(|_| Err(anyhow::anyhow!("a {name} shard stopped without an answer")));
            if let Err(e) = result {
                // One shard failing stops the others: the service is down
                // as a whole, so an orchestrator restarts it.
                shutdown.cancel();
                failed.get_or_insert(e);
            }
        }
        let _ = acceptor.await;
        finish.await;
        failed.map_or(Ok(()), Err)
    }

    /// The service's API wrapped by the scaffold, with its readiness check.
    fn scaffold(&self, api: Router, openapi: utoipa::openapi::OpenApi) -> Router {
        let db = self.db.clone();
        let broker = self.broker.clone();
        let starting = self.consumers_starting.clone();
        let stateless = self.stateless;
        let ready: crate::http::ReadyCheck = Arc::new(move || {
            let db = db.clone();
            let broker = broker.clone();
            let starting = starting.clone();
            Box::pin(async move {
                let timeout = std::time::Duration::from_secs(2);
                let db_ok = stateless
                    || matches!(tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(&db)).await, Ok(Ok(_)));
                let broker_ok = tokio::time::timeout(timeout, broker.is_ready()).await.unwrap_or(false);
                let consumers_ok = starting.load(Ordering::Acquire) == 0;
                let state = |ok: bool, bad: &str| serde_json::Value::from(if ok { "ok" } else { bad });
                let mut checks = serde_json::Map::new();
                if !stateless {
                    checks.insert("database".into(), state(db_ok, "unreachable"));
                }
                checks.insert("broker".into(), state(broker_ok, "unreachable"));
                checks.insert("consumers".into(), state(consumers_ok, "starting"));
                // A broker outage is survivable (the outbox keeps what is
                // published, queues keep what is consumed), so it degrades
                // readiness without failing it; see docs/adr/0004.
                crate::http::Readiness { ready: db_ok && consumers_ok, checks }
            })
        });
        crate::http::app(self.name, api, openapi, ready, &self.config.http, crate::http::metrics_handle())
    }

    async fn serve_router(self, app: Router) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        let finish = self.finish();
        // The peer address reaches handlers (`ConnectInfo`), e.g. for
        // per-client limits when no proxy set `x-forwarded-for`.
        axum::serve(self.listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .with_context(|| format!("serve {}", self.name))?;
        finish.await;
        Ok(())
    }

    /// After the listener stopped: waits for the background tasks, closes
    /// the broker and the database.
    fn finish(&self) -> impl Future<Output = ()> + use<> {
        let (tasks, broker, db) = (self.tasks.clone(), self.broker.clone(), self.db.clone());
        let (grace, name) = (self.config.shutdown_grace, self.name);
        async move {
            tasks.close();
            if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
                tracing::warn!(service = name, "background tasks did not stop within the grace period");
            }
            // Bounded: a broker that stopped answering must not hold the exit.
            if tokio::time::timeout(grace, broker.close()).await.is_err() {
                tracing::warn!(service = name, "the broker connection did not close within the grace period");
            }
            db.close().await;
            tracing::info!(service = name, "stopped");
        }
    }
}

/// Serves `app` on a new thread with its own single-threaded runtime, on
/// the connections handed to `inbox`, until `shutdown`, then lets its
/// in-flight requests finish. The answer comes when the thread is done.
///
/// HTTP/1.1 straight on hyper (the hot path serves no HTTP/2 and no
/// upgrades; measured ≈ 7 % more requests per core than `axum::serve`'s
/// protocol-sniffing server and router, docs/adr/0020-gateway-hot-path.md).
fn serve_shard<S>(
    name: &'static str,
    index: usize,
    mut inbox: crate::accept::Inbox,
    app: S,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<anyhow::Result<()>>>
where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static,
{
    let (done, finished) = tokio::sync::oneshot::channel();
    let serve = move || -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .with_context(|| format!("start the runtime of {name} shard {index}"))?;
        runtime.block_on(async move {
            let http = hyper::server::conn::http1::Builder::new();
            let connections = hyper_util::server::graceful::GracefulShutdown::new();
            loop {
                let (stream, peer, open) = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    handed = inbox.next() => match handed {
                        Some(handed) => handed,
                        None => break,
                    },
                };
                let app = app.clone();
                // The peer address reaches handlers as with axum::serve.
                let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    tower::ServiceExt::oneshot(app.clone(), req.map(axum::body::Body::new))
                });
                let connection =
                    connections.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
                tokio::spawn(async move {
                    let _open = open;
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "connection ended");
                    }
                });
            }
            // Connections handed over but not served yet are closed; the
            // ones served stop reading new requests, those in flight finish.
            drop(inbox);
            connections.shutdown().await;
            Ok(())
        })
    };
    std::thread::Builder::new()
        .name(format!("{name}-{index}"))
        .spawn(move || {
            let _ = done.send(serve());
        })
        .with_context(|| format!("start {name} shard {index}"))?;
    Ok(finished)
}

/// Cancels `token` on Ctrl-C or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        tracing::info!("shutdown requested");
        token.cancel();
    });
}
