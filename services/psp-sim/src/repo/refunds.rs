//! The `refunds` table.

use sqlx::PgConnection;

use crate::domain::Refund;

pub async fn insert_refund(conn: &mut PgConnection, r: &Refund) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO refunds (id, charge_id, amount_cents, status, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&r.id)
        .bind(&r.charge)
        .bind(r.amount_cents)
        .bind(&r.status)
        .bind(r.created_at)
        .execute(conn)
        .await?;
    Ok(())
}
