//! `Idempotency-Key` on unsafe requests, with Stripe's semantics.
//!
//! - The key is claimed atomically (one `INSERT ... ON CONFLICT`) before the
//!   handler runs; keys are scoped to the caller and the route.
//! - The same key with the same body replays the first response, marked
//!   `Idempotent-Replayed: true`.
//! - The same key with a different body answers 422.
//! - The same key while the first request still runs answers 409.
//! - A 5xx answer releases the key, so the client may retry; keys and their
//!   responses are kept for `FEIRA_IDEMPOTENCY_TTL` (24 h by default).
//!
//! Handlers see the key as the [`IdempotencyKey`] request extension, so a use
//! case can also store it with the resource it creates.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::error::Problem;
use crate::http::caller::USER_ID_HEADER;

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// A claim older than this, with no response, is considered abandoned (its
/// process died) and may be claimed again.
const LOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// Response headers kept and replayed.
const KEPT_HEADERS: &[&str] = &["content-type", "location"];

/// The key of the current request, for handlers that want it.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub String);

#[derive(Clone)]
pub struct IdempotencyState {
    pub pool: PgPool,
    pub ttl: Duration,
    pub body_limit: usize,
}

/// Middleware: apply with `axum::middleware::from_fn_with_state(state, idempotency::layer)`
/// on the routes that accept a key. Requests without the header pass through.
pub async fn layer(State(st): State<IdempotencyState>, req: Request, next: Next) -> Response {
    let Some(raw) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let key = match raw.to_str() {
        Ok(k) if !k.trim().is_empty() && k.len() <= 255 => k.trim().to_string(),
        _ => return bad_request("Idempotency-Key must be 1 to 255 visible characters"),
    };
    let caller = req.headers().get(USER_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("anonymous").to_string();
    let scope = format!("{caller} {} {}", req.method(), req.uri().path());
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, st.body_limit).await {
        Ok(b) => b,
        Err(_) => {
            return Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Some(format!("the body is larger than {} bytes", st.body_limit)),
            )
            .into_response();
        }
    };
    let hash = Sha256::digest(&bytes).to_vec();

    match claim(&st, &scope, &key, &hash).await {
        Ok(Claim::Claimed) => {}
        Ok(Claim::Existing(row)) => return answer_existing(row, &hash),
        Err(e) => {
            tracing::error!(error = %e, "idempotency claim failed");
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("the database is unavailable, try again".to_string()),
            )
            .into_response();
        }
    }

    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(IdempotencyKey(key.clone()));
    let res = next.run(req).await;
    match store(&st, &scope, &key, res).await {
        Ok(res) => res,
        Err(e) => {
            tracing::error!(error = %e, "could not store the idempotent response");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, Some("internal error".to_string())).into_response()
        }
    }
}

enum Claim {
    Claimed,
    Existing(Row),
}

#[derive(sqlx::FromRow)]
struct Row {
    request_hash: Vec<u8>,
    response_status: Option<i16>,
    response_headers: Option<serde_json::Value>,
    response_body: Option<Vec<u8>>,
}

async fn claim(st: &IdempotencyState, scope: &str, key: &str, hash: &[u8]) -> sqlx::Result<Claim> {
    // Claims a new key, an expired one, or an abandoned claim of the same request.
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, locked_until, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4), now() + make_interval(secs => $5))
         ON CONFLICT (scope, key) DO UPDATE
            SET request_hash = EXCLUDED.request_hash, locked_until = EXCLUDED.locked_until,
                created_at = now(), expires_at = EXCLUDED.expires_at,
                response_status = NULL, response_headers = NULL, response_body = NULL
          WHERE idempotency_keys.expires_at < now()
             OR (idempotency_keys.response_status IS NULL
                 AND idempotency_keys.locked_until < now()
                 AND idempotency_keys.request_hash = EXCLUDED.request_hash)",
    )
    .bind(scope)
    .bind(key)
    .bind(hash)
    .bind(LOCK_TIMEOUT.as_secs_f64())
    .bind(st.ttl.as_secs_f64())
    .execute(&st.pool)
    .await?
    .rows_affected()
        == 1;
    if claimed {
        return Ok(Claim::Claimed);
    }
    let row: Row = sqlx::query_as(
        "SELECT request_hash, response_status, response_headers, response_body
           FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_one(&st.pool)
    .await?;
    Ok(Claim::Existing(row))
}

fn answer_existing(row: Row, hash: &[u8]) -> Response {
    if row.request_hash != hash {
        return Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("this Idempotency-Key was used with a different request body".to_string()),
        )
        .into_response();
    }
    let Some(status) = row.response_status else {
        return Problem::new(
            StatusCode::CONFLICT,
            Some("a request with this Idempotency-Key is still being processed".to_string()),
        )
        .into_response();
    };
    let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
    let mut res = (status, row.response_body.unwrap_or_default()).into_response();
    if let Some(serde_json::Value::Object(h)) = row.response_headers {
        for (name, value) in h {
            if let (Ok(n), Some(Ok(v))) =
                (HeaderName::try_from(name.as_str()), value.as_str().map(HeaderValue::from_str))
            {
                res.headers_mut().insert(n, v);
            }
        }
    }
    res.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    res
}

async fn store(st: &IdempotencyState, scope: &str, key: &str, res: Response) -> anyhow::Result<Response> {
    if res.status().is_server_error() {
        // Our handlers roll back on failure, so nothing happened: free the key.
        sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2")
            .bind(scope)
            .bind(key)
            .execute(&st.pool)
            .await?;
        return Ok(res);
    }
    let (parts, body) = res.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, usize::MAX).await?;
    let headers = kept_headers(&parts.headers);
    sqlx::query(
        "UPDATE idempotency_keys
            SET response_status = $3, response_headers = $4, response_body = $5, locked_until = NULL
          WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .bind(parts.status.as_u16() as i16)
    .bind(headers)
    .bind(bytes.as_ref())
    .execute(&st.pool)
    .await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

fn kept_headers(h: &HeaderMap) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for name in KEPT_HEADERS {
        if let Some(v) = h.get(*name).and_then(|v| v.to_str().ok()) {
            out.insert((*name).to_string(), v.into());
        }
    }
    serde_json::Value::Object(out)
}

fn bad_request(detail: &str) -> Response {
    Problem::new(StatusCode::BAD_REQUEST, Some(detail.to_string())).into_response()
}
