//! `/auth`: registration, login, token refresh and logout.

use std::net::SocketAddr;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use platform::ApiError;
use platform::error::FieldErrors;
use platform::http::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{bearer, client_ip, verify_bearer};
use crate::app::{self, TokenPair};
use crate::domain::{DisplayName, Email, NewUser, Password, Role, Roles};
use crate::{AppState, IdentityError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

/// A new customer account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(example = "ana@example.com")]
    pub email: String,
    /// 10 to 128 characters.
    #[schema(example = "correct horse battery")]
    pub password: String,
    #[schema(example = "Ana Souza")]
    pub name: Option<String>,
}

impl TryFrom<RegisterRequest> for NewUser {
    type Error = ApiError;

    fn try_from(req: RegisterRequest) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let email = errors.check("email", Email::parse(&req.email));
        let password = errors.check("password", Password::parse(&req.password));
        let name = errors.check("name", DisplayName::parse_optional(req.name.as_deref()));
        errors.into_result()?;
        match (email, password, name) {
            (Some(email), Some(password), Some(name)) => {
                Ok(NewUser { email, name, password, roles: Roles::one(Role::Customer) })
            }
            _ => Err(ApiError::invalid(Vec::new())),
        }
    }
}

/// The answer to every valid registration, whether the address was free or
/// already had an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    /// The normalized address.
    #[schema(example = "ana@example.com")]
    pub email: String,
    #[schema(example = "accepted")]
    pub status: &'static str,
    pub detail: &'static str,
}

/// Registers a customer account. Answers 202 with the same body whether the
/// e-mail was free or already registered, so the endpoint does not reveal
/// who has an account; log in to use it.
#[utoipa::path(
    post, path = "/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 202, description = "registration accepted (also when the e-mail has an account)", body = RegisterResponse),
        (status = 400, description = "invalid e-mail, password (10 to 128 characters) or name", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "wrong JSON types", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn register(
    State(st): State<AppState>,
    body: Result<Json<RegisterRequest>, ApiError>,
) -> Result<Response, IdentityError> {
    let Json(req) = body?;
    let new = NewUser::try_from(req)?;
    let email = new.email.as_str().to_string();
    app::register(&st, new).await?;
    let body = RegisterResponse {
        email,
        status: "accepted",
        detail: "if the address can be registered, its account is ready: log in with it",
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "ana@example.com")]
    pub email: String,
    pub password: String,
}

/// An access token and a refresh token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT (EdDSA) to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds the access token is valid.
    #[schema(example = 900)]
    pub expires_in: u64,
    /// Opaque; exchange it once at `POST /auth/refresh`.
    pub refresh_token: String,
}

impl From<TokenPair> for TokenResponse {
    fn from(p: TokenPair) -> Self {
        TokenResponse {
            access_token: p.access_token,
            token_type: "Bearer",
            expires_in: p.expires_in,
            refresh_token: p.refresh_token,
        }
    }
}

/// Logs in. A wrong password and an unknown e-mail get the same 401. Too
/// many failures for the account or from the client IP answer 429 with
/// `Retry-After`.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth",
    request_body = LoginRequest,
    params(("x-forwarded-for" = Option<String>, Header, description = "client address chain; the first hop is the client IP")),
    responses(
        (status = 200, description = "logged in", body = TokenResponse),
        (status = 401, description = "wrong e-mail or password", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "wrong JSON types", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many failed logins", body = platform::error::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "seconds to wait"))),
        (status = 503, description = "Redis or the database is unavailable", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn login(
    State(st): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Json<LoginRequest>, ApiError>,
) -> Result<Json<TokenResponse>, IdentityError> {
    let Json(req) = body?;
    let ip = client_ip(&headers, peer.as_ref().map(|Extension(c)| c));
    let pair = app::login(&st, &req.email, &req.password, ip).await?;
    Ok(Json(pair.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Exchanges a refresh token for a new access token and a new refresh
/// token; the presented one is spent. Presenting a spent token again
/// revokes every refresh token of its login (401).
#[utoipa::path(
    post, path = "/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "a new pair", body = TokenResponse),
        (status = 401, description = "unknown, spent, revoked or expired refresh token", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "wrong JSON types", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn refresh(
    State(st): State<AppState>,
    body: Result<Json<RefreshRequest>, ApiError>,
) -> Result<Json<TokenResponse>, IdentityError> {
    let Json(req) = body?;
    let pair = app::refresh(&st, &req.refresh_token).await?;
    Ok(Json(pair.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// The session's refresh token: its whole family is revoked.
    pub refresh_token: Option<String>,
}

/// Logs out: the access token is refused from now on (identity and the
/// gateway check the denylist) and, when given, the refresh token's family
/// is revoked. The body is optional.
#[utoipa::path(
    post, path = "/auth/logout", tag = "auth",
    request_body(content = Option<LogoutRequest>),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "logged out"),
        (status = 400, description = "the body is not JSON", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no valid Bearer access token", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "wrong JSON types", body = platform::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn logout(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<StatusCode, IdentityError> {
    let token = bearer(&headers)?.ok_or(IdentityError::InvalidToken)?;
    let claims = verify_bearer(&st, token).await?;
    let req: Option<LogoutRequest> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(serde_json::from_slice(&body).map_err(|e| {
            let kind = if e.is_data() { platform::ErrorKind::Unprocessable } else { platform::ErrorKind::BadRequest };
            ApiError::new(kind, format!("invalid JSON body: {e}"))
        })?)
    };
    app::logout(&st, &claims, req.as_ref().and_then(|r| r.refresh_token.as_deref())).await?;
    Ok(StatusCode::NO_CONTENT)
}
