//! HTTP: one file per resource (routes, DTOs, handlers; no SQL), and who
//! is calling.

pub mod admin;
pub mod auth;
pub mod jwks;
pub mod me;

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, header};
use platform::http::{Caller, Role as CallerRole};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{AccessClaims, User};
use crate::{AppState, IdentityError};

/// Who is calling, proven by a Bearer access token or forwarded by the
/// gateway (`x-feira-user-id` / `x-feira-roles`).
#[derive(Debug)]
pub struct Principal {
    pub user_id: Uuid,
    pub admin: bool,
    /// The verified token, when the caller presented one.
    pub claims: Option<AccessClaims>,
}

/// The Bearer token of a request: `Ok(None)` without `Authorization`, an
/// error for any other scheme.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, IdentityError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| IdentityError::InvalidToken)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(IdentityError::InvalidToken),
    }
}

/// Verifies a Bearer token (signature, expiry, issuer, audience, denylist).
pub async fn verify_bearer(st: &AppState, token: &str) -> Result<AccessClaims, IdentityError> {
    let claims = st.keys.verify(token).await.map_err(|e| {
        tracing::debug!(reason = %e, "access token refused");
        IdentityError::InvalidToken
    })?;
    if st.guard.is_denied(claims.jti).await? {
        return Err(IdentityError::InvalidToken);
    }
    Ok(claims)
}

/// The caller: a Bearer token wins (and must be valid); else the gateway's
/// headers; else `None` (anonymous).
pub async fn authenticate(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
) -> Result<Option<Principal>, IdentityError> {
    if let Some(token) = bearer(headers)? {
        let claims = verify_bearer(st, token).await?;
        return Ok(Some(Principal {
            user_id: claims.sub,
            admin: claims.roles.iter().any(|r| r == "admin"),
            claims: Some(claims),
        }));
    }
    Ok(caller.user_id.map(|user_id| Principal { user_id, admin: caller.has(CallerRole::Admin), claims: None }))
}

/// An admin caller, or 401 (anonymous) / 403 (anyone else).
pub async fn require_admin(st: &AppState, headers: &HeaderMap, caller: &Caller) -> Result<Principal, IdentityError> {
    match authenticate(st, headers, caller).await? {
        None => Err(IdentityError::Unauthenticated),
        Some(p) if !p.admin => Err(IdentityError::Forbidden("admins only")),
        Some(p) => Ok(p),
    }
}

/// The client's IP: the first `x-forwarded-for` hop (set by the gateway),
/// else the peer address when the server records it.
pub fn client_ip(headers: &HeaderMap, peer: Option<&ConnectInfo<SocketAddr>>) -> Option<IpAddr> {
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|hop| hop.trim().parse::<IpAddr>().ok());
    forwarded.or_else(|| peer.map(|ConnectInfo(addr)| addr.ip()))
}

/// An account as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    #[schema(example = json!(["customer"]))]
    pub roles: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<&User> for UserResponse {
    fn from(u: &User) -> Self {
        UserResponse {
            id: u.id,
            email: u.email.as_str().to_string(),
            name: u.name.clone(),
            roles: u.roles.names(),
            created_at: u.created_at,
        }
    }
}

/// The headers the gateway forwards (documented on routes that accept them).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct CallerHeaders {
    /// The authenticated user's id, set by the gateway; absent for anonymous calls.
    #[param(rename = "x-feira-user-id")]
    pub user_id: Option<Uuid>,
    /// Comma-separated roles (`customer`, `seller`, `admin`), set by the gateway.
    #[param(rename = "x-feira-roles")]
    pub roles: Option<String>,
}
