//! A JSON extractor whose every rejection is a problem+json answer.
//!
//! Its rejection is an [`ApiError`], so a handler that must check who is
//! calling before it looks at the body takes `Result<Json<T>, ApiError>` and
//! writes `let Json(req) = body?;` after its authorization.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorKind};

/// Like `axum::Json`, but a malformed body, a wrong type, a missing field,
/// a missing content type or a body over the limit answer problem+json with
/// the status axum chose (400, 415, 413, 422) and the parser's message.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(rejected(rejection)),
        }
    }
}

fn rejected(rejection: JsonRejection) -> ApiError {
    let kind = match rejection.status().as_u16() {
        413 => ErrorKind::PayloadTooLarge,
        415 => ErrorKind::UnsupportedMediaType,
        422 => ErrorKind::Unprocessable,
        _ => ErrorKind::BadRequest,
    };
    let detail = match &rejection {
        JsonRejection::JsonSyntaxError(_) => format!("malformed JSON: {}", rejection.body_text()),
        JsonRejection::JsonDataError(_) => {
            // serde's message names the field path and the expected type.
            rejection.body_text()
        }
        JsonRejection::MissingJsonContentType(_) => "expected `Content-Type: application/json`".to_string(),
        _ => rejection.body_text(),
    };
    ApiError::new(kind, detail)
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
