//! Refresh tokens, stored as SHA-256 hashes.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::RefreshState;

/// A stored refresh token.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshRow {
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

impl RefreshRow {
    pub fn state(&self) -> RefreshState {
        RefreshState { expires_at: self.expires_at, used_at: self.used_at, revoked_at: self.revoked_at }
    }
}

pub async fn insert_refresh_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
    family_id: Uuid,
    user_id: Uuid,
    issued_at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(family_id)
    .bind(user_id)
    .bind(issued_at)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The token of a hash, locked until the transaction ends (two exchanges of
/// one token are serialized: the second sees it used).
pub async fn lock_refresh_token(conn: &mut PgConnection, token_hash: &[u8]) -> sqlx::Result<Option<RefreshRow>> {
    sqlx::query_as(
        "SELECT family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1
         FOR UPDATE",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

pub async fn mark_used(conn: &mut PgConnection, token_hash: &[u8], at: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1")
        .bind(token_hash)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes every token of a family not revoked yet; returns how many.
#[tracing::instrument(skip_all, fields(family_id = %family_id))]
pub async fn revoke_family(conn: &mut PgConnection, family_id: Uuid, at: OffsetDateTime) -> sqlx::Result<u64> {
    let done = sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL")
        .bind(family_id)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes tokens expired before `before`; returns how many.
pub async fn delete_expired(conn: &mut PgConnection, before: OffsetDateTime) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1").bind(before).execute(conn).await?;
    Ok(done.rows_affected())
}
