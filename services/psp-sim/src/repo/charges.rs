//! The `charges` table: the provider's ledger.

use sqlx::PgConnection;
use time::OffsetDateTime;

use super::corrupt;
use crate::domain::{Charge, ChargeStatus, FailureCode, PixDetails};

#[derive(sqlx::FromRow)]
struct ChargeRow {
    id: String,
    status: String,
    amount_cents: i64,
    currency: String,
    order_ref: String,
    source_type: String,
    card_token: Option<String>,
    failure_code: Option<String>,
    pix_code: Option<String>,
    pix_expires_at: Option<OffsetDateTime>,
    notify_url: Option<String>,
    refunded_cents: i64,
    created_at: OffsetDateTime,
}

impl TryFrom<ChargeRow> for Charge {
    type Error = sqlx::Error;

    fn try_from(r: ChargeRow) -> Result<Self, sqlx::Error> {
        let status = ChargeStatus::parse(&r.status).ok_or_else(|| corrupt("charge status", &r.status))?;
        let failure_code = match r.failure_code {
            Some(code) => Some(FailureCode::parse(&code).ok_or_else(|| corrupt("failure code", &code))?),
            None => None,
        };
        let pix = match (r.pix_code, r.pix_expires_at) {
            (Some(code), Some(expires_at)) => Some(PixDetails { code, expires_at }),
            _ => None,
        };
        Ok(Charge {
            id: r.id,
            status,
            amount_cents: r.amount_cents,
            currency: r.currency,
            order_ref: r.order_ref,
            source_type: r.source_type,
            failure_code,
            pix,
            refunded_cents: r.refunded_cents,
            created_at: r.created_at,
            notify_url: r.notify_url,
            card_token: r.card_token,
        })
    }
}

const COLUMNS: &str = "id, status, amount_cents, currency, order_ref, source_type, card_token, failure_code, \
                       pix_code, pix_expires_at, notify_url, refunded_cents, created_at";

pub async fn insert_charge(conn: &mut PgConnection, c: &Charge) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO charges (id, status, amount_cents, currency, order_ref, source_type, card_token, failure_code, \
         pix_code, pix_expires_at, notify_url, refunded_cents, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&c.id)
    .bind(c.status.as_str())
    .bind(c.amount_cents)
    .bind(&c.currency)
    .bind(&c.order_ref)
    .bind(&c.source_type)
    .bind(&c.card_token)
    .bind(c.failure_code.map(FailureCode::as_str))
    .bind(c.pix.as_ref().map(|p| p.code.as_str()))
    .bind(c.pix.as_ref().map(|p| p.expires_at))
    .bind(&c.notify_url)
    .bind(c.refunded_cents)
    .bind(c.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn fetch_charge(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<Charge>> {
    let sql = format!("SELECT {COLUMNS} FROM charges WHERE id = $1");
    let row: Option<ChargeRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await?;
    row.map(Charge::try_from).transpose()
}

/// The charge, locked until the transaction ends.
pub async fn lock_charge(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<Charge>> {
    let sql = format!("SELECT {COLUMNS} FROM charges WHERE id = $1 FOR UPDATE");
    let row: Option<ChargeRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await?;
    row.map(Charge::try_from).transpose()
}

/// Charges oldest first, of one order reference or of all.
pub async fn list_charges(conn: &mut PgConnection, order_ref: Option<&str>, limit: i64) -> sqlx::Result<Vec<Charge>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM charges WHERE ($1::text IS NULL OR order_ref = $1) \
         ORDER BY created_at, id LIMIT $2"
    );
    let rows: Vec<ChargeRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(order_ref).bind(limit).fetch_all(conn).await?;
    rows.into_iter().map(Charge::try_from).collect()
}

/// Writes the charge's mutable state (status, refunded amount).
pub async fn update_charge(conn: &mut PgConnection, c: &Charge) -> sqlx::Result<()> {
    sqlx::query("UPDATE charges SET status = $2, refunded_cents = $3 WHERE id = $1")
        .bind(&c.id)
        .bind(c.status.as_str())
        .bind(c.refunded_cents)
        .execute(conn)
        .await?;
    Ok(())
}
