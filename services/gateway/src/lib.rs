//! gateway: the single public entry point of feira (the seeds' "Kong").
//!
//! Every request that is not one of the gateway's own endpoints is matched
//! against declarative routes (`config/gateway.toml`, see [`routes`]):
//! longest path prefix and method. The gateway then
//! 1. removes every `x-feira-*` header the client sent;
//! 2. verifies the bearer token (EdDSA JWT from identity, keys from its
//!    JWKS; [`auth`]) when the route requires or accepts one, and checks the
//!    route's roles (401 / 403 problem+json);
//! 3. checks the token's `jti` against identity's denylist (this gateway's
//!    copy of it, kept current over Redis pub/sub, while it is current;
//!    else Redis; `platform::revocations`) and takes a
//!    request from the caller's rate limit (per user, else per IP; GCRA
//!    shared by every replica, tokens leased ahead while a bucket is at
//!    least half full, local fallback when Redis is down; the checks waiting
//!    on a thread share one Redis round trip; [`limits`]) — 429 with
//!    `Retry-After` and `RateLimit-*`;
//! 4. forwards to the route's upstreams in round robin, skipping those whose
//!    circuit breaker is open, with the route's timeout (504), retrying
//!    idempotent methods only and within a retry budget ([`budget`]);
//!    hop-by-hop headers are dropped both ways, `X-Forwarded-*`,
//!    `x-feira-user-id` / `x-feira-roles`, `x-request-id` and `traceparent`
//!    are set;
//! 5. logs one access line (target `gateway::access`) and counts
//!    `gateway_requests_total{route,method,status}` and
//!    `gateway_upstream_duration_seconds{upstream}`.
//!
//! The proxy runs outside the platform's HTTP middleware, on a thread per
//! core (`FEIRA_GATEWAY_WORKERS`; docs/adr/0020-gateway-hot-path.md).
//!
//! Its own endpoints: the scaffold's `/health/*`, `/metrics`, `/docs`, plus
//! `/gateway/openapi.json` (every service's OpenAPI merged, [`docs`]) and
//! Swagger UI on it at `/gateway/docs`. Stateless: no database.
//!
//! # Layout
//! - `routes.rs`: the routes file format, its validation, route matching.
//! - `auth.rs`: JWKS cache and token verification.
//! - `limits.rs`: the Redis script (denylist + GCRA) and the local fallback.
//! - `budget.rs`: the retry budget.
//! - `proxy.rs`: the catch-all handler (auth, limits, forwarding, headers).
//! - `docs.rs`: the merged OpenAPI document.
//! - `examples/upstream.rs`: a trivial upstream for `bench/gateway.sh`.

pub mod auth;
pub mod budget;
pub mod docs;
pub mod limits;
pub mod proxy;
pub mod routes;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::routing::get;
use platform::config::Var;
use platform::http::HotPath;
use platform::service::{RunFuture, Service, ServiceSpec};
use std::convert::Infallible;
use tower::util::BoxCloneSyncService;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi;

pub const ROUTES_VAR: Var = Var {
    name: "FEIRA_GATEWAY_ROUTES",
    default: "config/gateway.toml",
    help: "the routes file; when this default path is missing, the same routes compiled into the binary are used",
};
pub const JWKS_URL_VAR: Var = Var {
    name: "FEIRA_GATEWAY_JWKS_URL",
    default: "http://127.0.0.1:8101/.well-known/jwks.json",
    help: "identity's JWKS (Ed25519 keys that sign access tokens)",
};
pub const ISSUER_VAR: Var =
    Var { name: "FEIRA_GATEWAY_JWT_ISSUER", default: "feira-identity", help: "required `iss` of access tokens" };
pub const AUDIENCE_VAR: Var =
    Var { name: "FEIRA_GATEWAY_JWT_AUDIENCE", default: "feira", help: "required `aud` of access tokens" };
pub const JWKS_REFRESH_VAR: Var = Var {
    name: "FEIRA_GATEWAY_JWKS_REFRESH",
    default: "5m",
    help: "how often the JWKS is fetched again in the background (removed keys stop verifying)",
};
pub const JWKS_MIN_REFETCH_VAR: Var = Var {
    name: "FEIRA_GATEWAY_JWKS_MIN_REFETCH",
    default: "5s",
    help: "shortest time between two JWKS fetches caused by tokens with an unknown `kid`",
};
pub const CORS_ORIGINS_VAR: Var = Var {
    name: "FEIRA_GATEWAY_CORS_ORIGINS",
    default: "",
    help: "comma-separated origins allowed by CORS (`*` for any; empty: no CORS headers)",
};
pub const DENYLIST_FAIL_MODE_VAR: Var = Var {
    name: "FEIRA_GATEWAY_DENYLIST_FAIL_MODE",
    default: "open",
    help: "when Redis is down: `open` accepts valid tokens without the logout check, `closed` refuses them (401)",
};
pub const OPENAPI_TTL_VAR: Var = Var {
    name: "FEIRA_GATEWAY_OPENAPI_TTL",
    default: "10s",
    help: "how long the merged OpenAPI document is kept before the upstreams are asked again",
};

pub const WORKERS_VAR: Var = Var {
    name: "FEIRA_GATEWAY_WORKERS",
    default: "auto",
    help: "threads serving the gateway's port, each with its own single-threaded runtime (`auto`: one per core; \
           `0`: on the process's shared runtime)",
};

pub const SPEC: ServiceSpec = ServiceSpec {
    name: "gateway",
    default_port: 8080,
    migrator: None,
    openapi,
    vars: &[
        ROUTES_VAR,
        JWKS_URL_VAR,
        ISSUER_VAR,
        AUDIENCE_VAR,
        JWKS_REFRESH_VAR,
        JWKS_MIN_REFETCH_VAR,
        CORS_ORIGINS_VAR,
        DENYLIST_FAIL_MODE_VAR,
        OPENAPI_TTL_VAR,
        WORKERS_VAR,
    ],
    consumers: &[],
    run,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "feira gateway",
        description = "The single entry point. Every other path is routed to a service; the merged OpenAPI \
                       document of all services is at /gateway/openapi.json (Swagger UI at /gateway/docs)."
    ),
    paths(docs::merged_openapi)
)]
struct ApiDoc;

/// The OpenAPI document of the gateway's own endpoints.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

fn run(svc: Service) -> RunFuture {
    Box::pin(async move {
        let (router, hot) = router(&svc).await?;
        svc.serve_with_hot_path(router, openapi(), hot).await
    })
}

fn var<'a>(svc: &'a Service, v: &Var) -> &'a str {
    svc.config.var(v.name).unwrap_or(v.default)
}

/// Reads the routes (the file, or the compiled-in defaults when the default
/// path is missing).
fn load_routes(svc: &Service) -> anyhow::Result<routes::Table> {
    let path = var(svc, &ROUTES_VAR);
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && path == ROUTES_VAR.default => {
            tracing::info!(path, "routes file not found; using the compiled-in default routes");
            routes::DEFAULT_ROUTES.to_string()
        }
        Err(e) => return Err(e).with_context(|| format!("read the gateway routes file {path} (FEIRA_GATEWAY_ROUTES)")),
    };
    let config = svc.config.clone();
    routes::Table::parse(&text, |name| config.service(name).ok().map(|s| s.port))
        .with_context(|| format!("invalid gateway routes file {path}"))
}

/// The gateway's own endpoints (served with the platform's middleware) and
/// the proxy (every other path, on the hot path).
async fn router(svc: &Service) -> anyhow::Result<(Router, HotPath)> {
    let table = load_routes(svc)?;
    let duration = |v: &Var| svc.config.duration(v.name).with_context(|| format!("invalid {}", v.name));
    let deny_fail_closed = match var(svc, &DENYLIST_FAIL_MODE_VAR) {
        "open" => false,
        "closed" => true,
        other => anyhow::bail!("invalid {}: {other:?}; use open or closed", DENYLIST_FAIL_MODE_VAR.name),
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(table.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
        .context("build the upstream HTTP client")?;
    let verifier = auth::Verifier::new(
        auth::VerifierConfig {
            jwks_url: var(svc, &JWKS_URL_VAR).to_string(),
            issuer: var(svc, &ISSUER_VAR).to_string(),
            audience: var(svc, &AUDIENCE_VAR).to_string(),
            min_refetch: duration(&JWKS_MIN_REFETCH_VAR)?,
        },
        client.clone(),
    );
    svc.spawn_task(verifier.clone().refresh_loop(duration(&JWKS_REFRESH_VAR)?, svc.shutdown.clone()));
    let limits = limits::Limits::new(
        &svc.config.messaging.namespace,
        &svc.config.redis_url,
        &table.policies,
        deny_fail_closed,
        svc.shutdown.clone(),
    )?;
    let docs = Arc::new(docs::Docs::new(table.upstreams.clone(), client.clone(), duration(&OPENAPI_TTL_VAR)?));
    tracing::info!(routes = table.routes.len(), upstreams = table.upstreams.len(), "gateway routes loaded");
    let connections = upstream::Connections::new(table.connect_timeout, Duration::from_secs(60));
    let gw = Arc::new(proxy::Gateway {
        budget: budget::RetryBudget::new(table.budget),
        table,
        verifier,
        limits,
        connections,
        body_limit: svc.config.http.body_limit,
        body_timeout: svc.config.http.request_timeout,
        metrics: proxy::RequestMetrics::default(),
    });
    let sweeper = gw.clone();
    let stop = svc.shutdown.clone();
    svc.spawn_task(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(60)) => sweeper.limits.retain_recent(),
            }
        }
    });

    let shards = workers(var(svc, &WORKERS_VAR))?;
    let cors = cors(var(svc, &CORS_ORIGINS_VAR))?;
    let mut router = Router::new().route("/gateway/openapi.json", get(docs::merged_openapi)).with_state(docs).merge(
        utoipa_swagger_ui::SwaggerUi::new("/gateway/docs")
            .config(utoipa_swagger_ui::Config::new(["/gateway/openapi.json"])),
    );
    let proxy = tower::service_fn(move |req| {
        let gw = gw.clone();
        async move { Ok::<_, Infallible>(proxy::proxy(gw, req).await) }
    });
    let service = match cors {
        Some(cors) => {
            router = router.layer(cors.clone());
            BoxCloneSyncService::new(tower::ServiceBuilder::new().layer(cors).service(proxy))
        }
        None => BoxCloneSyncService::new(proxy),
    };
    Ok((router, HotPath { claims: is_proxied, service, shards }))
}

/// Every path but the gateway's own endpoints goes to the proxy.
pub fn is_proxied(path: &str) -> bool {
    !(path == "/gateway" || path.starts_with("/gateway/"))
}

/// `FEIRA_GATEWAY_WORKERS`: `auto` is one thread per core.
fn workers(value: &str) -> anyhow::Result<usize> {
    match value {
        "auto" => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
        n => n.parse::<usize>().ok().filter(|n| *n <= 1024).with_context(|| {
            format!("invalid {}: {n:?}; use auto or a number of threads (0: the shared runtime)", WORKERS_VAR.name)
        }),
    }
}

fn cors(origins: &str) -> anyhow::Result<Option<CorsLayer>> {
    let origins: Vec<&str> = origins.split(',').map(str::trim).filter(|o| !o.is_empty()).collect();
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins == ["*"] {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o).with_context(|| format!("invalid origin {o:?} in {}", CORS_ORIGINS_VAR.name))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(list)
    };
    let h = |s: &'static str| HeaderName::from_static(s);
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([
                h("authorization"),
                h("content-type"),
                h("idempotency-key"),
                h("x-request-id"),
                h("traceparent"),
            ])
            .expose_headers([
                h("x-request-id"),
                h("location"),
                h("retry-after"),
                h("ratelimit-limit"),
                h("ratelimit-remaining"),
                h("ratelimit-reset"),
            ])
            .max_age(Duration::from_secs(600)),
    ))
}
