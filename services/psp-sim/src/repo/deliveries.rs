//! The `pix_deliveries` table: one row per callback attempt.

use serde::Serialize;
use sqlx::PgConnection;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// One attempt to deliver a PIX callback.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Delivery {
    /// 1 for the first attempt.
    pub attempt: i32,
    pub url: String,
    /// The receiver's HTTP status; `null` when no answer came.
    pub status_code: Option<i32>,
    /// Why no answer came (connection refused, timeout).
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub attempted_at: OffsetDateTime,
}

pub async fn insert_delivery(conn: &mut PgConnection, charge_id: &str, d: &Delivery) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO pix_deliveries (charge_id, attempt, url, status_code, error, attempted_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(charge_id)
    .bind(d.attempt)
    .bind(&d.url)
    .bind(d.status_code)
    .bind(&d.error)
    .bind(d.attempted_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn list_deliveries(conn: &mut PgConnection, charge_id: &str) -> sqlx::Result<Vec<Delivery>> {
    sqlx::query_as(
        "SELECT attempt, url, status_code, error, attempted_at FROM pix_deliveries WHERE charge_id = $1 ORDER BY id",
    )
    .bind(charge_id)
    .fetch_all(conn)
    .await
}
