//! The provider's HTTP API: `/v1/*` (behind the fault switch) and the
//! `/admin/*` controls tests use.

pub mod charges;
pub mod pix;
pub mod refunds;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde::de::DeserializeOwned;

use crate::PspError;
use crate::app::Answer;
use crate::domain::Invalid;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The request's `Idempotency-Key` (required on every POST).
fn idempotency_key(headers: &HeaderMap) -> Result<String, PspError> {
    let Some(raw) = headers.get(IDEMPOTENCY_KEY) else {
        return Err(Invalid("the Idempotency-Key header is required".into()).into());
    };
    match raw.to_str().map(str::trim) {
        Ok(k) if !k.is_empty() && k.len() <= 255 => Ok(k.to_string()),
        _ => Err(Invalid("Idempotency-Key must be 1 to 255 visible characters".into()).into()),
    }
}

/// A JSON body; anything else is an `invalid_request_error`.
fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, PspError> {
    serde_json::from_slice(body).map_err(|e| Invalid(format!("invalid JSON body: {e}")).into())
}

/// Sends an answer in the provider's JSON (a 402 decline carries the
/// charge), errors included: they pass the scaffold's problem+json
/// conversion unchanged.
fn respond(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = platform::http::faults::foreign(status, answer.body.to_string());
    if answer.replayed {
        res.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    res
}
