//! The `psp_idempotency_keys` table. A key is claimed and answered inside the
//! transaction that records the charge or refund, so the primary key
//! `(scope, key)` makes a concurrent request with the same key wait for the
//! first one, then read its answer.

use sqlx::PgConnection;

/// What claiming a key found.
#[derive(Debug)]
pub enum Claim {
    /// The key is new: this transaction does the work.
    Claimed,
    /// The key was used before (its transaction committed).
    Existing { request_hash: Vec<u8>, status_code: Option<i16>, response: Option<serde_json::Value> },
}

/// Claims `key` in `scope` for a request with fingerprint `request_hash`;
/// waits while another transaction holds an uncommitted claim on it.
pub async fn claim_key(conn: &mut PgConnection, scope: &str, key: &str, request_hash: &[u8]) -> sqlx::Result<Claim> {
    let inserted = sqlx::query(
        "INSERT INTO psp_idempotency_keys (scope, key, request_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(request_hash)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::Claimed);
    }
    let (request_hash, status_code, response): (Vec<u8>, Option<i16>, Option<serde_json::Value>) = sqlx::query_as(
        "SELECT request_hash, status_code, response FROM psp_idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_one(conn)
    .await?;
    Ok(Claim::Existing { request_hash, status_code, response })
}

/// Stores the answer of a claimed key, to replay it.
pub async fn store_response(
    conn: &mut PgConnection,
    scope: &str,
    key: &str,
    status_code: i16,
    response: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE psp_idempotency_keys SET status_code = $3, response = $4 WHERE scope = $1 AND key = $2")
        .bind(scope)
        .bind(key)
        .bind(status_code)
        .bind(response)
        .execute(conn)
        .await?;
    Ok(())
}
