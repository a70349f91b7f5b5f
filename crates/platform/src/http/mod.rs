//! The HTTP scaffold every service shares.
//!
//! [`app`] wraps a service's API router with: `/health/live`,
//! `/health/ready`, `/metrics`, `/openapi.json` and Swagger UI at `/docs`
//! (assets embedded in the binary), a request id (`x-request-id`), a span per
//! request continuing the caller's W3C `traceparent`, RED metrics per route,
//! a body size limit, a request timeout, and RFC 9457 problem+json for every
//! error, including unknown routes and methods.

pub mod caller;
pub mod faults;
pub mod idempotency;
pub mod json;
pub mod page;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json as AxumJson, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use caller::{Caller, Role};
pub use json::Json;

use crate::config::HttpConfig;
use crate::error::{PROBLEM_JSON, Problem};
use crate::telemetry;

/// The answer of a readiness check: whether to route traffic here, and the
/// state of each dependency.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    pub ready: bool,
    pub checks: serde_json::Map<String, serde_json::Value>,
}

/// A readiness check, run on every `GET /health/ready`.
pub type ReadyCheck = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Readiness> + Send>> + Send + Sync>;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps a service's API with the shared endpoints and middleware.
pub fn app(
    service: &'static str,
    api: Router,
    openapi: utoipa::openapi::OpenApi,
    ready: ReadyCheck,
    cfg: &HttpConfig,
    metrics: PrometheusHandle,
) -> Router {
    let api = api.route_layer(middleware::from_fn_with_state(service, record_metrics));
    let docs = utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", openapi);
    Router::new()
        .route("/health/live", get(|| async { AxumJson(serde_json::json!({"status": "ok"})) }))
        .route("/health/ready", get(readiness).with_state(ready))
        .route("/metrics", get(move || std::future::ready(metrics.render())))
        .merge(api)
        .merge(docs)
        .fallback(move |req: Request| unknown_route(service, req))
        .layer(middleware::from_fn(run_to_completion))
        .layer(DefaultBodyLimit::max(cfg.body_limit))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, cfg.request_timeout))
        .layer(middleware::from_fn(problem_for_every_error))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |req: &Request| {
                    let request_id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
                    let span = tracing::info_span!(
                        "http request",
                        otel.name = format!("{} {}", req.method(), req.uri().path()),
                        otel.kind = "server",
                        service,
                        http.request.method = %req.method(),
                        url.path = %req.uri().path(),
                        http.route = tracing::field::Empty,
                        http.response.status_code = tracing::field::Empty,
                        request_id,
                    );
                    let tp = req.headers().get("traceparent").and_then(|v| v.to_str().ok());
                    telemetry::set_parent(&span, tp);
                    span
                })
                .on_response(|res: &Response, latency: Duration, span: &tracing::Span| {
                    span.record("http.response.status_code", res.status().as_u16());
                    tracing::info!(
                        status = res.status().as_u16(),
                        latency_ms = latency.as_millis() as u64,
                        "request finished"
                    );
                })
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
}

async fn readiness(State(ready): State<ReadyCheck>) -> Response {
    let r = ready().await;
    if r.ready {
        return AxumJson(serde_json::json!({"status": "ready", "checks": r.checks})).into_response();
    }
    let failing: Vec<String> = r
        .checks
        .iter()
        .filter(|(_, v)| v.as_str() != Some("ok"))
        .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default()))
        .collect();
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, Some(format!("not ready ({})", failing.join(", ")))).into_response()
}

async fn unknown_route(service: &'static str, req: Request) -> Response {
    metrics::counter!("http_requests_total", "service" => service, "route" => "unmatched", "method" => req.method().to_string(), "status" => "404").increment(1);
    Problem::new(StatusCode::NOT_FOUND, Some(format!("no route for {} {}", req.method(), req.uri().path())))
        .into_response()
}

/// Request count and latency by route, method and status.
async fn record_metrics(State(service): State<&'static str>, req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    tracing::Span::current().record("http.route", route.as_str());
    let method = req.method().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    let labels = [
        ("service", service.to_string()),
        ("route", route),
        ("method", method),
        ("status", res.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    res
}

/// Runs the request on its own task, so a client that disconnects (or the
/// request timeout) never cancels a handler halfway through a transaction:
/// the work finishes and commits or rolls back as a whole. (sqlx 0.9.0 can
/// also return a connection with an open transaction to its pool when a
/// `begin()` is cancelled; see docs/adr/0005.)
async fn run_to_completion(req: Request, next: Next) -> Response {
    use tracing::Instrument as _;
    let work = next.run(req).instrument(tracing::Span::current());
    match tokio::spawn(work).await {
        Ok(res) => res,
        Err(e) => {
            tracing::error!(error = %e, "request handler panicked");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, Some("internal error".to_string())).into_response()
        }
    }
}

/// Any error answer that is not already problem+json (axum's 405, the
/// timeout's 408, a 413 from a body limit) becomes one, so clients parse one
/// shape.
/// A response extension: this error answer speaks someone else's protocol
/// (a simulated payment provider's or carrier's JSON errors) and goes out
/// as it is, not as problem+json.
#[derive(Debug, Clone, Copy)]
pub struct ForeignError;

async fn problem_for_every_error(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) || res.extensions().get::<ForeignError>().is_some() {
        return res;
    }
    let is_problem =
        res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&text).trim().to_string();
    let detail = if detail.is_empty() { status.canonical_reason().unwrap_or("error").to_lowercase() } else { detail };
    let mut out = Problem::new(status, Some(detail)).into_response();
    for (name, value) in parts.headers.iter() {
        if name == header::ALLOW || name == header::RETRY_AFTER {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// The scaffold's own paths: health, metrics, the OpenAPI document and
/// Swagger UI. A [`HotPath`] never gets them.
pub fn is_scaffold_path(path: &str) -> bool {
    path.starts_with("/health/")
        || path == "/metrics"
        || path == "/openapi.json"
        || path == "/docs"
        || path.starts_with("/docs/")
}

/// A service that answers some requests without the scaffold's middleware
/// (see [`crate::service::Service::serve_with_hot_path`]).
#[derive(Clone)]
pub struct HotPath {
    /// Whether a request path goes to `service` (asked only for paths that
    /// are not [`is_scaffold_path`]).
    pub claims: fn(&str) -> bool,
    pub service: tower::util::BoxCloneSyncService<Request, Response, std::convert::Infallible>,
    /// How many threads serve the listener, each with its own
    /// single-threaded runtime accepting connections (thread per core, as
    /// nginx's workers): a request, its upstream connection and their wake-ups
    /// stay on one thread. `0` serves on the process's runtime like any
    /// other service.
    pub shards: usize,
}

/// The scaffold's `app` for its own paths and every path `hot` does not
/// claim, `hot.service` for the rest, without a router in front. With
/// `home`, `app`'s requests run as tasks on that runtime (the process's),
/// wherever they arrived: what they start (a broker connection, a pooled
/// HTTP connection) then lives as long as the service, not as long as a
/// shard's runtime.
pub(crate) fn dispatch(
    app: Router,
    hot: HotPath,
    home: Option<tokio::runtime::Handle>,
) -> impl tower::Service<
    Request,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response, std::convert::Infallible>> + Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    use futures_util::FutureExt as _;
    use tower::ServiceExt as _;
    tower::service_fn(move |req: Request| {
        let path = req.uri().path();
        if !is_scaffold_path(path) && (hot.claims)(path) {
            return hot.service.clone().oneshot(req).left_future();
        }
        let answer = app.clone().oneshot(req);
        match &home {
            None => answer.boxed().right_future(),
            Some(home) => {
                let task = home.spawn(answer);
                async move {
                    Ok(match task.await {
                        Ok(Ok(res)) => res,
                        Ok(Err(never)) => match never {},
                        Err(e) => {
                            tracing::error!(error = %e, "a request task failed");
                            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, None).into_response()
                        }
                    })
                }
                .boxed()
                .right_future()
            }
        }
    })
}

/// Sets `Location` on a created resource.
pub fn created<T: serde::Serialize>(location: String, body: T) -> Response {
    let mut res = (StatusCode::CREATED, AxumJson(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
                .unwrap_or_else(|_| metrics_exporter_prometheus::PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may exist (a test harness); ours still renders.
            let _ = metrics::set_global_recorder(recorder);
            let upkeep = handle.clone();
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
            handle
        })
        .clone()
}
