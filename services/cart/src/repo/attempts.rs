//! `checkout_attempts`: the order body a checkout sent (or is about to send)
//! to orders under an Idempotency-Key, and the order it produced.

use sqlx::PgConnection;
use uuid::Uuid;

/// One checkout attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Attempt {
    pub customer_id: Uuid,
    pub idempotency_key: String,
    pub checkout_request: serde_json::Value,
    pub order_body: String,
    pub total_cents: i64,
    pub order_id: Option<Uuid>,
    pub order_status: Option<String>,
}

pub async fn fetch_attempt(conn: &mut PgConnection, customer_id: Uuid, key: &str) -> sqlx::Result<Option<Attempt>> {
    sqlx::query_as(
        "SELECT customer_id, idempotency_key, checkout_request, order_body, total_cents, order_id, order_status
           FROM checkout_attempts WHERE customer_id = $1 AND idempotency_key = $2",
    )
    .bind(customer_id)
    .bind(key)
    .fetch_optional(conn)
    .await
}

/// Stores `attempt` unless one exists for its customer and key; returns the
/// one that is stored (the first one wins).
pub async fn insert_attempt(conn: &mut PgConnection, attempt: &Attempt) -> sqlx::Result<Attempt> {
    sqlx::query(
        "INSERT INTO checkout_attempts (customer_id, idempotency_key, checkout_request, order_body, total_cents)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (customer_id, idempotency_key) DO NOTHING",
    )
    .bind(attempt.customer_id)
    .bind(&attempt.idempotency_key)
    .bind(&attempt.checkout_request)
    .bind(&attempt.order_body)
    .bind(attempt.total_cents)
    .execute(&mut *conn)
    .await?;
    fetch_attempt(conn, attempt.customer_id, &attempt.idempotency_key).await?.ok_or(sqlx::Error::RowNotFound)
}

/// Records the order orders placed for an attempt; true when this call did
/// (false: it was already recorded).
pub async fn record_order(
    conn: &mut PgConnection,
    customer_id: Uuid,
    key: &str,
    order_id: Uuid,
    status: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE checkout_attempts SET order_id = $3, order_status = $4
          WHERE customer_id = $1 AND idempotency_key = $2 AND order_id IS NULL",
    )
    .bind(customer_id)
    .bind(key)
    .bind(order_id)
    .bind(status)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes attempts older than `secs`; returns how many.
pub async fn delete_attempts_older_than(conn: &mut PgConnection, secs: f64) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM checkout_attempts WHERE created_at < now() - make_interval(secs => $1)")
        .bind(secs)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}
