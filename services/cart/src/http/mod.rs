//! The cart HTTP API. Handlers check who calls first (401 for anonymous
//! callers), then what they sent (every invalid field named at once, 422),
//! then call one use case.

pub mod cart;
pub mod checkout;

use platform::ErrorKind;
use platform::error::{ApiError, FieldErrors};
use utoipa::IntoParams;
use uuid::Uuid;

/// The caller, as the gateway sets it.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct CallerHeaders {
    /// The authenticated user's id (required: the cart is theirs).
    #[param(rename = "x-feira-user-id")]
    pub user_id: Option<Uuid>,
    /// Comma-separated roles (`customer`, `seller`, `admin`).
    #[param(rename = "x-feira-roles")]
    pub roles: Option<String>,
}

/// 422 naming every invalid field, when there is one.
fn unprocessable(errors: FieldErrors) -> Result<(), ApiError> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError {
        kind: ErrorKind::Unprocessable,
        detail: "the request has invalid fields".into(),
        errors: errors.0,
        source: None,
    })
}
