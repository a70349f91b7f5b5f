//! The carrier's HTTP API, `/v1/*` (behind the fault switch).

pub mod quotes;
pub mod shipments;

use axum::http::HeaderMap;
use serde::de::DeserializeOwned;

use crate::CarrierError;
use crate::domain::Invalid;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The request's `Idempotency-Key` (required to book).
fn idempotency_key(headers: &HeaderMap) -> Result<String, CarrierError> {
    let Some(raw) = headers.get(IDEMPOTENCY_KEY) else {
        return Err(Invalid("the Idempotency-Key header is required".into()).into());
    };
    match raw.to_str().map(str::trim) {
        Ok(k) if !k.is_empty() && k.len() <= 255 => Ok(k.to_string()),
        _ => Err(Invalid("Idempotency-Key must be 1 to 255 visible characters".into()).into()),
    }
}

/// A JSON body; anything else is an `invalid_request_error`.
fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CarrierError> {
    serde_json::from_slice(body).map_err(|e| Invalid(format!("invalid JSON body: {e}")).into())
}
