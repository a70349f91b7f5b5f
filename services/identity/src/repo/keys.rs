//! JWT signing keys.

use sqlx::PgConnection;
use time::OffsetDateTime;

/// A signing key as stored (the private half possibly encrypted, or gone).
#[derive(Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub kid: String,
    pub public_key: Vec<u8>,
    pub private_key: Option<Vec<u8>>,
    pub encrypted: bool,
    pub created_at: OffsetDateTime,
    pub superseded_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for KeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRow")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("superseded_at", &self.superseded_at)
            .finish_non_exhaustive()
    }
}

/// Serializes key creation across replicas until the transaction ends.
pub async fn lock_keys(conn: &mut PgConnection) -> sqlx::Result<()> {
    // Any constant; it names "identity signing keys" in this database.
    sqlx::query("SELECT pg_advisory_xact_lock(7304661210)").execute(conn).await?;
    Ok(())
}

/// The key that signs now.
pub async fn fetch_active_key(conn: &mut PgConnection) -> sqlx::Result<Option<KeyRow>> {
    sqlx::query_as(
        "SELECT kid, public_key, private_key, encrypted, created_at, superseded_at FROM signing_keys
         WHERE superseded_at IS NULL",
    )
    .fetch_optional(conn)
    .await
}

/// The active key and the keys superseded after `since` (still published).
pub async fn fetch_published_keys(conn: &mut PgConnection, since: OffsetDateTime) -> sqlx::Result<Vec<KeyRow>> {
    sqlx::query_as(
        "SELECT kid, public_key, NULL::bytea AS private_key, encrypted, created_at, superseded_at FROM signing_keys
         WHERE superseded_at IS NULL OR superseded_at > $1 ORDER BY created_at DESC",
    )
    .bind(since)
    .fetch_all(conn)
    .await
}

/// Retires the active key (it stops signing and loses its private half).
pub async fn supersede_active_key(conn: &mut PgConnection, at: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query("UPDATE signing_keys SET superseded_at = $1, private_key = NULL WHERE superseded_at IS NULL")
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn insert_key(conn: &mut PgConnection, key: &KeyRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, public_key, private_key, encrypted, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&key.kid)
    .bind(&key.public_key)
    .bind(&key.private_key)
    .bind(key.encrypted)
    .bind(key.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes keys superseded before `before` (no token they signed is valid).
pub async fn delete_retired_keys(conn: &mut PgConnection, before: OffsetDateTime) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM signing_keys WHERE superseded_at < $1").bind(before).execute(conn).await?;
    Ok(done.rows_affected())
}
