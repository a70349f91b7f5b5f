//! identity: accounts (customers, sellers, admins), argon2id password hashes,
//! EdDSA access tokens, rotating refresh tokens and the JWKS the gateway
//! verifies tokens with.
//!
//! # Token contract (what the gateway relies on)
//! - Access token: a JWT, header `{"alg":"EdDSA","typ":"JWT","kid"}`, claims
//!   `iss` (`FEIRA_IDENTITY_ISSUER`), `aud` (`FEIRA_IDENTITY_AUDIENCE`), `sub`
//!   (user UUID), `roles` (`customer`/`seller`/`admin`), `jti` (UUID), `iat`,
//!   `exp` (`iat` + `FEIRA_IDENTITY_ACCESS_TTL`), `email`.
//! - Keys: `GET /.well-known/jwks.json`, Ed25519 `OKP` keys with `kid` (the
//!   RFC 7638 thumbprint), `alg: EdDSA`, `use: sig`; `Cache-Control: public,
//!   max-age=300`. An unknown `kid` means "fetch the JWKS again".
//! - Logout: Redis key `<FEIRA_AMQP_NAMESPACE>:identity:denylist:<jti>` =
//!   `"1"`, expiring with the token, published to every gateway's copy of
//!   the denylist; the logout answers once every copy has it
//!   (`platform::revocations`, docs/adr/0021-revocation-copies.md).
//! - Refresh tokens are opaque (32 random bytes, base64url), stored as
//!   SHA-256 hashes, spent on use; reusing a spent one revokes its family.
//!
//! See docs/adr/0012-identity-accounts-and-tokens.md for the reasons.
//!
//! # Layout
//! - `http/`: `/auth` (register, login, refresh, logout), `/me`, the JWKS,
//!   `/admin` (accounts, key rotation); who is calling (`http/mod.rs`).
//! - `domain/`: e-mail, password, name and role types that parse, the
//!   account, the access-token claims, the refresh-token rule; no I/O.
//! - `app/`: use cases; `keys` (signing keys, rotation, JWT sign/verify,
//!   JWKS), `guard` (Redis: failed-login counters, denylist), `passwords`
//!   (argon2id off the runtime), `settings` (the `FEIRA_IDENTITY_*` variables).
//! - `repo/`: SQL.
//! - `migrations/`: users, refresh tokens, signing keys.

pub mod app;
pub mod domain;
pub mod http;
pub mod repo;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use platform::ErrorKind;
use platform::config::Config;
use platform::error::{ApiError, Problem};
use platform::service::{RunFuture, Service, ServiceSpec};
use sqlx::PgPool;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::app::guard::{Guard, Limits};
use crate::app::keys::KeyRing;
use crate::app::passwords::Passwords;
use crate::app::settings::Settings;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const SPEC: ServiceSpec = ServiceSpec {
    name: "identity",
    default_port: 8101,
    migrator: Some(&MIGRATOR),
    openapi,
    vars: app::settings::VARS,
    consumers: &[],
    run,
};

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub keys: Arc<KeyRing>,
    pub guard: Guard,
    pub passwords: Passwords,
    pub settings: Arc<Settings>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "feira identity",
        description = "Accounts, login with EdDSA access tokens and rotating refresh tokens, logout, the JWKS."
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(http::auth::router())
        .merge(http::me::router())
        .merge(http::jwks::router())
        .merge(http::admin::router())
}

/// The OpenAPI document alone (`feira openapi identity`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

fn run(svc: Service) -> RunFuture {
    Box::pin(async move {
        let settings = Arc::new(Settings::from_config(&svc.config)?);
        let keys = KeyRing::new(
            svc.db.clone(),
            settings.key_secret.as_deref(),
            settings.issuer.clone(),
            settings.audience.clone(),
            settings.access_ttl,
        )?;
        let kid = keys.ensure_active_key().await?;
        tracing::info!(kid = %kid, "signing key ready");
        if let Some((email, password)) = &settings.admin {
            app::bootstrap_admin(&svc.db, email, password).await?;
        }
        let limits = Limits {
            per_account: settings.max_failures_account,
            per_ip: settings.max_failures_ip,
            window: settings.failure_window,
        };
        let state = AppState {
            db: svc.db.clone(),
            keys: Arc::new(keys),
            guard: Guard::new(&settings.redis_url, settings.redis_prefix.clone(), limits)?,
            passwords: Passwords::new().await?,
            settings,
        };
        svc.spawn_task(app::maintenance(state.clone(), svc.shutdown.clone()));
        let (api, openapi) = api().split_for_parts();
        let api: Router = api.with_state(state);
        svc.serve(api, openapi).await
    })
}

/// Creates an admin account (for `feira admin create --email --password`):
/// prepares the identity database (created and migrated if needed) and
/// stores the account with the role `admin`. Fails when the e-mail or the
/// password breaks the rules or the e-mail already has an account.
pub async fn create_admin(config: &Config, email: &str, password: &str) -> anyhow::Result<uuid::Uuid> {
    let new = app::admin_account(email, password)?;
    let options = &config.service(SPEC.name)?.database;
    let db = platform::db::connect(options, 2, &MIGRATOR).await?;
    let created = app::create_user(&db, new).await;
    db.close().await;
    match created.map_err(anyhow::Error::from)? {
        Some(user) => Ok(user.id),
        None => anyhow::bail!("an account with this e-mail already exists"),
    }
}

/// What can go wrong in identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Unknown e-mail or wrong password: one answer for both.
    #[error("invalid e-mail or password")]
    InvalidCredentials,
    #[error("too many failed logins; try again later")]
    Throttled { retry_after_secs: u64 },
    #[error("the access token is missing, invalid, expired or revoked")]
    InvalidToken,
    #[error("the refresh token is invalid, spent, expired or revoked")]
    InvalidRefreshToken,
    #[error("authentication required")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("user not found")]
    NotFound,
    #[error("an account with this e-mail already exists")]
    EmailTaken,
    /// Redis is unreachable (logins and token checks fail closed).
    #[error("a dependency is unavailable, try again")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl IdentityError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            IdentityError::InvalidCredentials
            | IdentityError::InvalidToken
            | IdentityError::InvalidRefreshToken
            | IdentityError::Unauthenticated => ErrorKind::Unauthenticated,
            // Shown as 429 by `into_response`.
            IdentityError::Throttled { .. } => ErrorKind::Unavailable,
            IdentityError::Forbidden(_) => ErrorKind::Forbidden,
            IdentityError::NotFound => ErrorKind::NotFound,
            IdentityError::EmailTaken => ErrorKind::Conflict,
            IdentityError::Unavailable(_) => ErrorKind::Unavailable,
            IdentityError::Api(e) => e.kind,
            IdentityError::Db(e) if platform::error::is_transient(e) => ErrorKind::Unavailable,
            IdentityError::Db(_) | IdentityError::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::Api(e) => e,
            IdentityError::Db(e) => ApiError::from(e),
            IdentityError::Internal(e) => ApiError::internal(e),
            IdentityError::Unavailable(source) => ApiError {
                kind: ErrorKind::Unavailable,
                detail: "a dependency is unavailable, try again".into(),
                errors: Vec::new(),
                source: Some(source),
            },
            other => ApiError::new(other.kind(), other.to_string()),
        }
    }
}

impl IntoResponse for IdentityError {
    fn into_response(self) -> Response {
        match self {
            IdentityError::Throttled { retry_after_secs } => {
                let problem = Problem::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    Some("too many failed logins; try again later".to_string()),
                );
                let mut res = problem.into_response();
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    res.headers_mut().insert(header::RETRY_AFTER, v);
                }
                res
            }
            e @ (IdentityError::InvalidToken | IdentityError::Unauthenticated) => {
                let mut res = ApiError::from(e).into_response();
                res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                res
            }
            other => ApiError::from(other).into_response(),
        }
    }
}
