//! One small error vocabulary for HTTP answers and message handling.
//!
//! A service's own error enum says which [`ErrorKind`] each variant is; the
//! kind decides the HTTP status of an answer and what a consumer does with a
//! message that failed (dead-letter it now, or retry it later).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// What went wrong, from the caller's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is malformed or breaks a rule: fixing the input fixes it.
    BadRequest,
    /// The input is well-formed but cannot be processed as sent (422).
    Unprocessable,
    /// The body is larger than the service accepts (413).
    PayloadTooLarge,
    /// The body is not in a format the route accepts (415).
    UnsupportedMediaType,
    NotFound,
    /// The state of the resource forbids the request right now.
    Conflict,
    Unauthenticated,
    Forbidden,
    /// A dependency is down or slow: trying again later may succeed.
    Unavailable,
    /// A defect or an unexpected failure.
    Internal,
}

/// What a consumer does with a message whose handler failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Try again after a delay; dead-letter after the last attempt.
    Retry,
    /// No attempt can succeed: park it in the dead-letter queue at once.
    DeadLetter,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Messages that can never be handled are parked at once; anything that
    /// may be transient (a missing row that another event will create, a
    /// database hiccup, a defect fixed by a deploy) is retried first.
    pub fn disposition(self) -> Disposition {
        match self {
            ErrorKind::BadRequest
            | ErrorKind::Unprocessable
            | ErrorKind::PayloadTooLarge
            | ErrorKind::UnsupportedMediaType
            | ErrorKind::Unauthenticated
            | ErrorKind::Forbidden => Disposition::DeadLetter,
            ErrorKind::NotFound | ErrorKind::Conflict | ErrorKind::Unavailable | ErrorKind::Internal => {
                Disposition::Retry
            }
        }
    }
}

/// An RFC 9457 problem document, served as `application/problem+json`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Field-level errors for invalid input.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON pointer-like path to the field, e.g. `items[3].quantity`.
    pub field: String,
    pub message: String,
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<Option<String>>) -> Self {
        let title = status.canonical_reason().unwrap_or("Error").to_string();
        let slug = title.to_lowercase().replace(' ', "-");
        Problem {
            type_: format!("https://feira.dev/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        res
    }
}

/// The error type of every handler: a kind, a message safe to show, and
/// for internal errors the cause, which is logged and never shown.
#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub source: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        ApiError { kind, detail: detail.into(), errors: Vec::new(), source: None }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorKind::NotFound, format!("{what} not found"))
    }

    pub fn invalid(errors: Vec<FieldError>) -> Self {
        ApiError { kind: ErrorKind::BadRequest, detail: "the request has invalid fields".into(), errors, source: None }
    }

    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        ApiError {
            kind: ErrorKind::Internal,
            detail: "internal error".into(),
            errors: Vec::new(),
            source: Some(source.into()),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e.as_ref() as &(dyn std::error::Error + 'static))
    }
}

/// True for failures that a retry may not meet: the database is unreachable
/// or busy, or the transaction lost a deadlock (40P01) or a serialization
/// conflict (40001).
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(d) => matches!(d.code().as_deref(), Some("40P01" | "40001")),
        _ => false,
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if !is_transient(&e) {
            return ApiError::internal(e);
        }
        ApiError {
            kind: ErrorKind::Unavailable,
            detail: "the database is busy or unavailable, try again".into(),
            errors: Vec::new(),
            source: Some(e.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.source {
            if self.kind == ErrorKind::Internal {
                tracing::error!(error = format!("{source:#}"), "request failed");
            } else {
                tracing::warn!(error = format!("{source:#}"), kind = ?self.kind, "request failed");
            }
        }
        let mut p = Problem::new(self.kind.status(), Some(self.detail));
        p.errors = self.errors;
        let mut res = p.into_response();
        if self.kind == ErrorKind::Unavailable {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}

/// Collects field errors while a DTO is parsed into domain types.
#[derive(Debug, Default)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }

    /// Keeps the value, or records its error under `field`.
    pub fn check<T, E: std::fmt::Display>(&mut self, field: impl Into<String>, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(field, e.to_string());
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::invalid(self.0)) }
    }
}
