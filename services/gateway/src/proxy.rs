//! The catch-all handler: match a route, authenticate, rate-limit, forward
//! with retries and circuit breakers, and answer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use platform::error::Problem;

use crate::auth::{Claims, TokenError, Verifier};
use crate::budget::RetryBudget;
use crate::limits::{Limits, Rate};
use crate::routes::{Auth, Match, Route, Table};
use crate::upstream::Connections;

/// Everything a request needs; one per gateway.
pub struct Gateway {
    pub table: Table,
    pub verifier: Verifier,
    pub limits: Limits,
    pub budget: RetryBudget,
    /// Upstream connections, kept alive per serving thread, so a request
    /// and the connection it uses are driven by the same thread.
    pub connections: Connections,
    pub body_limit: usize,
    /// How long a request body may take to arrive (408 after).
    pub body_timeout: Duration,
    pub metrics: RequestMetrics,
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static USER_ID: HeaderName = HeaderName::from_static("x-feira-user-id");
static ROLES: HeaderName = HeaderName::from_static("x-feira-roles");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// What the access log and the metrics record of one request.
struct Outcome<'a> {
    route: &'a str,
    upstream: Option<&'a str>,
    user: Option<uuid::Uuid>,
}

/// Forwards any request that no gateway endpoint answers.
///
/// It runs outside the platform's HTTP middleware
/// (`Service::serve_with_hot_path`, docs/adr/0020-gateway-hot-path.md), so it
/// does their work itself: the request id (kept or made, sent upstream and
/// back), a server span continuing the client's `traceparent`, the request
/// metrics and the access log line.
pub async fn proxy(gw: Arc<Gateway>, mut req: Request) -> Response {
    use tracing::Instrument as _;
    let started = Instant::now();
    let request_id = match req.headers().get(&REQUEST_ID) {
        Some(v) if !v.is_empty() && v.len() <= 128 => v.clone(),
        _ => {
            let v = new_request_id();
            req.headers_mut().insert(REQUEST_ID.clone(), v.clone());
            v
        }
    };
    let method = req.method().clone();
    let span = tracing::info_span!(
        "http request",
        otel.name = tracing::field::Empty,
        otel.kind = "server",
        service = "gateway",
        http.request.method = %method,
        url.path = %req.uri().path(),
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        request_id = ?request_id,
    );
    if !span.is_disabled() {
        let tp = req.headers().get(&TRACEPARENT).and_then(|v| v.to_str().ok());
        platform::telemetry::set_parent(&span, tp);
    }
    let mut outcome = Outcome { route: UNMATCHED, upstream: None, user: None };
    let mut res = handle(&gw, req, &mut outcome).instrument(span.clone()).await;
    let status = res.status();
    res.headers_mut().insert(REQUEST_ID.clone(), request_id.clone());
    if !span.is_disabled() {
        span.record("otel.name", format!("{method} {}", outcome.route));
        span.record("http.route", outcome.route);
        span.record("http.response.status_code", status.as_u16());
    }
    let elapsed = started.elapsed();
    gw.metrics.record(outcome.route, &method, status, elapsed);
    tracing::info!(
        target: "gateway::access",
        parent: &span,
        method = %method,
        route = outcome.route,
        upstream = outcome.upstream.unwrap_or("-"),
        status = status.as_u16(),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        user_id = outcome.user.map(|u| u.to_string()).as_deref().unwrap_or("-"),
        request_id = ?request_id,
        "access"
    );
    res
}

/// The route label of requests that match no route.
const UNMATCHED: &str = "unmatched";

/// A random (version 4) UUID, from a fast non-cryptographic generator: it
/// only has to be unique, not secret.
fn new_request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
    let mut buf = uuid::Uuid::encode_buffer();
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf)).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// `gateway_requests_total{route,method,status}` and
/// `gateway_request_duration_seconds{route}`, with the handles cached so a
/// request does not build label sets.
#[derive(Default)]
pub struct RequestMetrics {
    by_route: std::sync::RwLock<HashMap<String, RouteMetrics>>,
}

struct RouteMetrics {
    duration: metrics::Histogram,
    counters: HashMap<(Method, u16), metrics::Counter>,
}

impl RequestMetrics {
    fn record(&self, route: &str, method: &Method, status: StatusCode, elapsed: Duration) {
        let key = (method.clone(), status.as_u16());
        let seconds = elapsed.as_secs_f64();
        {
            // Recorded under the read lock: no handle is cloned, so the
            // serving threads share no reference count.
            let by_route = self.by_route.read().unwrap_or_else(|p| p.into_inner());
            if let Some(m) = by_route.get(route)
                && let Some(counter) = m.counters.get(&key)
            {
                counter.increment(1);
                m.duration.record(seconds);
                return;
            }
        }
        let mut by_route = self.by_route.write().unwrap_or_else(|p| p.into_inner());
        let m = by_route.entry(route.to_string()).or_insert_with(|| RouteMetrics {
            duration: metrics::histogram!("gateway_request_duration_seconds", "route" => route.to_string()),
            counters: HashMap::new(),
        });
        let counter = m.counters.entry(key).or_insert_with(|| {
            metrics::counter!(
                "gateway_requests_total",
                "route" => route.to_string(),
                "method" => method.to_string(),
                "status" => status.as_u16().to_string()
            )
        });
        counter.increment(1);
        m.duration.record(seconds);
    }
}

async fn handle<'a>(gw: &'a Gateway, req: Request, outcome: &mut Outcome<'a>) -> Response {
    let (mut parts, body) = req.into_parts();
    // Only the gateway speaks for the caller.
    strip_feira_headers(&mut parts.headers);
    let route = match gw.table.find(&parts.method, parts.uri.path()) {
        Match::Route(r) => r,
        Match::WrongMethod(allowed) => return method_not_allowed(&parts.method, parts.uri.path(), &allowed),
        Match::None => {
            let detail = format!("no route for {} {}", parts.method, parts.uri.path());
            return problem(StatusCode::NOT_FOUND, "no-route", detail);
        }
    };
    outcome.route = &route.name;

    let claims = match (route.auth, bearer(&parts.headers)) {
        (Auth::Public, _) | (Auth::Optional, None) => None,
        (Auth::Required, None) => return unauthorized(None),
        (_, Some(token)) => match gw.verifier.verify(token).await {
            Ok(c) => Some(c),
            Err(e) => return unauthorized(Some(e)),
        },
    };
    outcome.user = claims.as_ref().map(|c| c.sub);
    if !route.roles.is_empty() && !claims.as_ref().is_some_and(|c| c.roles.iter().any(|r| route.roles.contains(r))) {
        return problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("route {} needs one of the roles {}", route.name, route.roles.join(", ")),
        );
    }

    // The rate-limit key's caller: only built when a rate limit applies.
    let by_ip;
    let caller = match (&claims, &route.rate_limit) {
        (_, None) => "",
        (Some(c), Some(_)) => c.derived.caller.as_str(),
        (None, Some(_)) => {
            by_ip = format!("ip:{}", client_ip(&parts).map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into()));
            by_ip.as_str()
        }
    };
    let verdict = gw.limits.check(claims.as_ref().map(|c| c.jti.as_str()), route.rate_limit.as_deref(), caller).await;
    if verdict.revoked {
        return unauthorized(Some(TokenError::Revoked));
    }
    if let Some(rate) = verdict.rate.filter(|r| !r.allowed) {
        let mut res = problem(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!(
                "rate limit {} exceeded, retry in {} s",
                route.rate_limit.as_ref().map_or("", |p| p.name.as_str()),
                rate.retry_after_secs
            ),
        );
        set_rate_headers(res.headers_mut(), &rate);
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(rate.retry_after_secs));
        return res;
    }

    // Most requests (GET, DELETE) have no body: nothing to wait for.
    let body = if hyper::body::Body::is_end_stream(&body) {
        Ok(Ok(Bytes::new()))
    } else {
        tokio::time::timeout(gw.body_timeout, read_body(body, gw.body_limit, &parts.headers)).await
    };
    let body = match body {
        Ok(Ok(b)) => b,
        Ok(Err(res)) => return *res,
        Err(_) => {
            return refused_body(problem(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                format!("the request body did not arrive within {:?}", gw.body_timeout),
            ));
        }
    };
    let headers = upstream_headers(&mut parts, claims.as_deref());
    let Some(uri) = upstream_uri(route, &parts.uri) else {
        return problem(StatusCode::BAD_REQUEST, "bad-request", "the request path cannot be forwarded".into());
    };
    let mut res = forward(gw, route, &parts.method, &uri, headers, body, outcome).await;
    if let Some(rate) = &verdict.rate {
        set_rate_headers(res.headers_mut(), rate);
    }
    res
}

/// Sends the request to the route's upstreams: round robin, skipping those
/// whose breaker is open, retrying idempotent methods within the budget.
async fn forward<'a>(
    gw: &Gateway,
    route: &'a Route,
    method: &Method,
    uri: &axum::http::Uri,
    mut headers: HeaderMap,
    body: Bytes,
    outcome: &mut Outcome<'a>,
) -> Response {
    let idempotent = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE);
    let attempts = if idempotent { route.attempts } else { 1 };
    gw.budget.request();
    let mut rotation = route.rotation().cycle();
    let n = route.upstreams.len();
    let mut last: Option<Response> = None;
    for attempt in 0..attempts {
        if attempt > 0 {
            if !gw.budget.try_retry() {
                metrics::counter!("gateway_retry_budget_exhausted_total", "route" => route.name.clone()).increment(1);
                break;
            }
            metrics::counter!("gateway_retries_total", "route" => route.name.clone()).increment(1);
            tokio::time::sleep(Duration::from_millis(5 + fastrand::u64(0..20))).await;
        }
        let Some((upstream, permit)) =
            rotation.by_ref().take(n).find_map(|u| u.breaker.try_acquire().ok().map(|p| (u, p)))
        else {
            if last.is_none() {
                last = Some(problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "upstream-circuit-open",
                    format!("every upstream of route {} is failing; try again shortly", route.name),
                ));
            }
            break;
        };
        outcome.upstream = Some(&upstream.label);
        let mut request = axum::http::Request::new(http_body_util::Full::new(body.clone()));
        *request.method_mut() = method.clone();
        *request.uri_mut() = uri.clone();
        // The last attempt takes the headers; earlier ones copy them.
        *request.headers_mut() = if attempt + 1 == attempts { std::mem::take(&mut headers) } else { headers.clone() };
        let sent = Instant::now();
        let result = tokio::time::timeout(route.timeout, gw.connections.send(upstream.authority(), request)).await;
        upstream.duration.record(sent.elapsed().as_secs_f64());
        match result {
            Ok(Ok(res)) if is_failure(res.status()) => {
                permit.failure();
                last = Some(downstream(res));
            }
            Ok(Ok(res)) => {
                permit.success();
                return downstream(res);
            }
            Ok(Err(e)) => {
                permit.failure();
                tracing::warn!(route = route.name, upstream = upstream.label, error = %e, "upstream unreachable");
                last = Some(problem(
                    StatusCode::BAD_GATEWAY,
                    "upstream-unreachable",
                    format!("the upstream of route {} could not be reached", route.name),
                ));
            }
            Err(_) => {
                permit.failure();
                tracing::warn!(
                    route = route.name,
                    upstream = upstream.label,
                    timeout_ms = route.timeout.as_millis() as u64,
                    "upstream timed out"
                );
                last = Some(problem(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream-timeout",
                    format!("the upstream of route {} did not answer within {:?}", route.name, route.timeout),
                ));
            }
        }
    }
    last.unwrap_or_else(|| problem(StatusCode::BAD_GATEWAY, "upstream-unreachable", "no upstream answered".into()))
}

/// The path and query the upstream gets: the client's as they came, unless
/// the route strips its prefix. None when the result is not a valid path.
fn upstream_uri(route: &Route, uri: &axum::http::Uri) -> Option<axum::http::Uri> {
    let path = route.upstream_path(uri.path());
    if path.len() == uri.path().len() {
        return Some(uri.path_and_query().cloned().map_or_else(|| axum::http::Uri::from_static("/"), Into::into));
    }
    match uri.query() {
        Some(q) => format!("{path}?{q}").parse().ok(),
        None => path.parse().ok(),
    }
}

/// 502, 503 and 504 from an upstream count against its breaker and may be
/// retried; any other answer is the upstream's answer.
fn is_failure(status: StatusCode) -> bool {
    matches!(status, StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT)
}

/// The upstream's answer, streamed back without its hop-by-hop headers.
fn downstream(res: axum::http::Response<hyper::body::Incoming>) -> Response {
    let mut out = res.map(Body::new);
    remove_hop_by_hop(out.headers_mut());
    out
}

async fn read_body(body: Body, limit: usize, headers: &HeaderMap) -> Result<Bytes, Box<Response>> {
    let too_large = || {
        Box::new(refused_body(problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("the request body is larger than {limit} bytes"),
        )))
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(Box::new(refused_body(problem(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("the request body could not be read: {e}"),
        )))),
    }
}

/// An answer given before the request body was read to its end: the
/// connection is closed after it, as the rest of the body would otherwise
/// be read as the next request.
fn refused_body(mut res: Response) -> Response {
    res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// The request's headers as the upstream gets them.
/// (They are taken from `parts`, not copied.)
fn upstream_headers(parts: &mut axum::http::request::Parts, claims: Option<&Claims>) -> HeaderMap {
    let mut h = std::mem::take(&mut parts.headers);
    remove_hop_by_hop(&mut h);
    let host = h.remove(header::HOST);
    h.remove(header::CONTENT_LENGTH);
    if let Some(c) = claims {
        if let Some(v) = &c.derived.user_id {
            h.insert(USER_ID.clone(), v.clone());
        }
        if let Some(v) = &c.derived.roles {
            h.insert(ROLES.clone(), v.clone());
        }
    }
    if let Some(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) {
        let chain = match h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prev) if !prev.trim().is_empty() => format!("{prev}, {peer}"),
            _ => peer.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&chain) {
            h.insert(X_FORWARDED_FOR.clone(), v);
        }
    }
    if !h.contains_key(&X_FORWARDED_PROTO) {
        h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    if !h.contains_key(&X_FORWARDED_HOST)
        && let Some(host) = host
    {
        h.insert(X_FORWARDED_HOST.clone(), host);
    }
    if let Some(tp) = platform::telemetry::current_traceparent().and_then(|tp| HeaderValue::from_str(&tp).ok()) {
        h.insert(TRACEPARENT.clone(), tp);
    }
    h
}

/// The client's address: the peer of the connection when the server
/// records it, else the last hop a proxy in front of the gateway appended
/// to `X-Forwarded-For`.
fn client_ip(parts: &axum::http::request::Parts) -> Option<IpAddr> {
    if let Some(c) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        return Some(c.0.ip());
    }
    parts
        .headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|ip| ip.trim().parse().ok())
}

/// Removes every `x-feira-*` header a client sent.
pub fn strip_feira_headers(h: &mut HeaderMap) {
    let names: Vec<HeaderName> = h.keys().filter(|k| k.as_str().starts_with("x-feira-")).cloned().collect();
    for n in names {
        h.remove(n);
    }
}

/// Removes the hop-by-hop headers (RFC 9110 7.6.1): Connection, the ones it
/// names, Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade.
pub fn remove_hop_by_hop(h: &mut HeaderMap) {
    let mut names: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    names.extend(h.keys().filter(|k| k.as_str().starts_with("proxy-")).cloned());
    for n in names {
        h.remove(n);
    }
    for n in [header::CONNECTION, header::TE, header::TRAILER, header::TRANSFER_ENCODING, header::UPGRADE] {
        h.remove(n);
    }
    h.remove("keep-alive");
}

fn bearer(h: &HeaderMap) -> Option<&str> {
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// RateLimit-Limit / -Remaining / -Reset (draft-ietf-httpapi-ratelimit-headers).
fn set_rate_headers(h: &mut HeaderMap, rate: &Rate) {
    h.insert("ratelimit-limit", HeaderValue::from(rate.limit));
    if let Some(r) = rate.remaining {
        h.insert("ratelimit-remaining", HeaderValue::from(r));
    }
    h.insert("ratelimit-reset", HeaderValue::from(rate.reset_secs));
}

/// A problem+json answer of the gateway's own.
pub fn problem(status: StatusCode, kind: &str, detail: String) -> Response {
    let mut p = Problem::new(status, Some(detail));
    p.type_ = format!("https://feira.dev/problems/{kind}");
    p.into_response()
}

fn unauthorized(error: Option<TokenError>) -> Response {
    let (detail, challenge) = match error {
        None => ("a bearer token is required".to_string(), HeaderValue::from_static("Bearer realm=\"feira\"")),
        Some(e) => {
            metrics::counter!("gateway_tokens_rejected_total", "reason" => e.as_str()).increment(1);
            (
                format!("the bearer token is not valid ({e})"),
                HeaderValue::from_static("Bearer realm=\"feira\", error=\"invalid_token\""),
            )
        }
    };
    let mut res = problem(StatusCode::UNAUTHORIZED, "unauthenticated", detail);
    res.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
    res
}

fn method_not_allowed(method: &Method, path: &str, allowed: &[Method]) -> Response {
    let list: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    let mut res =
        problem(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", format!("{method} is not routed for {path}"));
    if let Ok(v) = HeaderValue::from_str(&list.join(", ")) {
        res.headers_mut().insert(header::ALLOW, v);
    }
    res
}
