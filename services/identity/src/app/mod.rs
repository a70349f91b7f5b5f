//! Use cases: registration, login, token refresh and logout, accounts,
//! signing-key rotation, and the background maintenance task.

pub mod guard;
pub mod keys;
pub mod passwords;
pub mod settings;

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::AppState;
use crate::IdentityError;
use crate::domain::{AccessClaims, Email, NewUser, RefreshVerdict, Role, Roles, User, judge_refresh};
use crate::repo;

pub use keys::{KeyRing, Rotation};

/// What a login or a refresh answers.
#[derive(Debug)]
pub struct TokenPair {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
}

/// A new opaque refresh token (32 random bytes, base64url) and its hash.
fn new_refresh_token() -> Result<(String, Vec<u8>), IdentityError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| IdentityError::Internal(anyhow::anyhow!("no randomness")))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = refresh_hash(&token);
    Ok((token, hash))
}

/// What is stored of a refresh token.
fn refresh_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates a customer account. Answers the same whether the e-mail was free
/// or taken (the password is hashed either way), so registration does not
/// tell who has an account.
#[tracing::instrument(skip_all)]
pub async fn register(st: &AppState, new: NewUser) -> Result<(), IdentityError> {
    let created = create_user(&st.db, new).await?;
    if created.is_none() {
        tracing::info!("registration for an address that has an account; answered as accepted");
    }
    Ok(())
}

/// Stores a new account; `None` when its e-mail is taken.
pub async fn create_user(db: &PgPool, new: NewUser) -> Result<Option<User>, IdentityError> {
    let hash = passwords::hash(new.password.expose().to_string()).await?;
    let user = User {
        id: Uuid::now_v7(),
        email: new.email,
        name: new.name.map(|n| n.as_str().to_string()),
        roles: new.roles,
        created_at: kernel::time::now(),
    };
    let mut conn = db.acquire().await?;
    let inserted = repo::users::insert_user(&mut conn, &user, &hash).await?;
    Ok(inserted.then_some(user))
}

/// Checks the credentials (throttled per account and per client IP) and
/// opens a session: a new refresh-token family.
#[tracing::instrument(skip_all)]
pub async fn login(st: &AppState, email: &str, password: &str, ip: Option<IpAddr>) -> Result<TokenPair, IdentityError> {
    let email = Email::normalize(email);
    st.guard.check_login(&email, ip).await?;
    let found = {
        let mut conn = st.db.acquire().await?;
        repo::users::fetch_credentials(&mut conn, &email).await?
    };
    let ok = st.passwords.verify(password, found.as_ref().map(|(_, h)| h.as_str())).await?;
    let user = match found {
        Some((user, _)) if ok => user,
        _ => {
            st.guard.record_failure(&email, ip).await?;
            return Err(IdentityError::InvalidCredentials);
        }
    };
    st.guard.reset_account(&email).await?;
    let mut tx = st.db.begin().await?;
    let pair = issue(st, &mut tx, &user, Uuid::now_v7()).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "logged in");
    Ok(pair)
}

/// A new access token and the next refresh token of `family`.
async fn issue(st: &AppState, conn: &mut PgConnection, user: &User, family: Uuid) -> Result<TokenPair, IdentityError> {
    let (refresh_token, hash) = new_refresh_token()?;
    let now = kernel::time::now();
    repo::refresh_tokens::insert_refresh_token(conn, &hash, family, user.id, now, now + st.settings.refresh_ttl)
        .await?;
    let claims = st.keys.claims_for(user);
    let access_token = st.keys.sign(&claims).await?;
    Ok(TokenPair { access_token, expires_in: st.settings.access_ttl.as_secs(), refresh_token })
}

/// Exchanges a refresh token for a new pair. A token already exchanged
/// revokes its whole family.
#[tracing::instrument(skip_all)]
pub async fn refresh(st: &AppState, token: &str) -> Result<TokenPair, IdentityError> {
    let hash = refresh_hash(token);
    let mut tx = st.db.begin().await?;
    let Some(row) = repo::refresh_tokens::lock_refresh_token(&mut tx, &hash).await? else {
        return Err(IdentityError::InvalidRefreshToken);
    };
    let now = kernel::time::now();
    match judge_refresh(&row.state(), now) {
        RefreshVerdict::Refused => Err(IdentityError::InvalidRefreshToken),
        RefreshVerdict::Reused => {
            let revoked = repo::refresh_tokens::revoke_family(&mut tx, row.family_id, now).await?;
            tx.commit().await?;
            tracing::warn!(user_id = %row.user_id, family_id = %row.family_id, revoked, "a spent refresh token was presented again; its family is revoked");
            Err(IdentityError::InvalidRefreshToken)
        }
        RefreshVerdict::Rotate => {
            repo::refresh_tokens::mark_used(&mut tx, &hash, now).await?;
            let Some(user) = repo::users::fetch_user(&mut tx, row.user_id).await? else {
                return Err(IdentityError::InvalidRefreshToken);
            };
            let pair = issue(st, &mut tx, &user, row.family_id).await?;
            tx.commit().await?;
            Ok(pair)
        }
    }
}

/// Ends a session: denylists the access token until it expires and, when
/// given one of the caller's refresh tokens, revokes its family.
#[tracing::instrument(skip_all, fields(user_id = %claims.sub))]
pub async fn logout(st: &AppState, claims: &AccessClaims, refresh_token: Option<&str>) -> Result<(), IdentityError> {
    if let Some(token) = refresh_token {
        let hash = refresh_hash(token);
        let mut tx = st.db.begin().await?;
        // Someone else's token (or none) is ignored: the answer is the same.
        if let Some(row) = repo::refresh_tokens::lock_refresh_token(&mut tx, &hash).await?
            && row.user_id == claims.sub
        {
            repo::refresh_tokens::revoke_family(&mut tx, row.family_id, kernel::time::now()).await?;
        }
        tx.commit().await?;
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // Past its expiry too: the gateway accepts a token up to 30 s after it
    // (clock leeway), and a logged-out one must not come back then.
    st.guard.deny(claims.jti, claims.remaining_secs(now) + DENY_PAST_EXPIRY_SECS).await
}

/// How long a logged-out token stays denylisted after it expires: more
/// than the gateway's clock leeway (30 s).
const DENY_PAST_EXPIRY_SECS: u64 = 60;

pub async fn get_user(db: &PgPool, id: Uuid) -> Result<User, IdentityError> {
    let mut conn = db.acquire().await?;
    repo::users::fetch_user(&mut conn, id).await?.ok_or(IdentityError::NotFound)
}

/// Creates an account with any roles (admins only); a taken e-mail is a conflict.
#[tracing::instrument(skip_all)]
pub async fn admin_create_user(st: &AppState, new: NewUser) -> Result<User, IdentityError> {
    create_user(&st.db, new).await?.ok_or(IdentityError::EmailTaken)
}

/// Creates the configured admin when no account has its e-mail.
pub async fn bootstrap_admin(db: &PgPool, email: &str, password: &str) -> anyhow::Result<()> {
    let new = admin_account(email, password)?;
    match create_user(db, new).await.map_err(anyhow::Error::from)? {
        Some(user) => tracing::info!(user_id = %user.id, "created the configured admin account"),
        None => tracing::info!("the configured admin account exists already; left unchanged"),
    }
    Ok(())
}

/// An admin account to create, checked against the rules.
pub fn admin_account(email: &str, password: &str) -> anyhow::Result<NewUser> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("invalid admin e-mail: {e}"))?;
    let password =
        crate::domain::Password::parse(password).map_err(|e| anyhow::anyhow!("invalid admin password: {e}"))?;
    Ok(NewUser { email, name: None, password, roles: Roles::one(Role::Admin) })
}

/// Rotates the signing key when it is too old and deletes what has expired
/// (retired keys, refresh tokens expired for a day), until shutdown.
pub async fn maintenance(st: AppState, stop: CancellationToken) {
    let max_age = st.settings.key_rotation;
    // Often enough for short rotation periods, at most once a minute.
    let every = (max_age / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = st.keys.rotate(Rotation::IfOlderThan(max_age)).await {
            tracing::warn!(error = %e, "automatic signing-key rotation failed; retrying later");
        }
        match st.keys.delete_retired().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "retired signing keys deleted"),
            Err(e) => tracing::warn!(error = %e, "deleting retired signing keys failed"),
        }
        let cutoff = kernel::time::now() - Duration::from_secs(24 * 3600);
        let deleted = async {
            let mut conn = st.db.acquire().await?;
            repo::refresh_tokens::delete_expired(&mut conn, cutoff).await
        };
        if let Err(e) = deleted.await {
            tracing::warn!(error = %e, "deleting expired refresh tokens failed");
        }
    }
}
