//! Reservations and their lines.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::corrupt;
use crate::domain::{Reservation, ReservationStatus, ReservedLine};

/// Serializes the transactions about one order until they end, so a reserve
/// command and its duplicate (or an HTTP retry) decide one after the other.
pub async fn lock_order(conn: &mut PgConnection, order_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7104))").bind(order_id).execute(conn).await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    order_id: Uuid,
    status: String,
    reason: Option<String>,
    expires_at: Option<OffsetDateTime>,
    correlation_id: Option<Uuid>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    order_id: Uuid,
    product_id: Uuid,
    quantity: i64,
    short_available: Option<i64>,
}

const COLUMNS: &str = "order_id, status, reason, expires_at, correlation_id, created_at, updated_at";

/// The reservation of an order; with `lock`, locked until the transaction ends.
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
pub async fn fetch_reservation(
    conn: &mut PgConnection,
    order_id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<Reservation>> {
    let sql =
        format!("SELECT {COLUMNS} FROM reservations WHERE order_id = $1{}", if lock { " FOR UPDATE" } else { "" });
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(order_id).fetch_optional(&mut *conn).await?;
    let Some(row) = row else { return Ok(None) };
    Ok(assemble(vec![row], conn).await?.pop())
}

/// Takes up to `limit` reservations held past `now`, skipping those another
/// transaction (another replica's sweep, a commit) has locked.
#[tracing::instrument(skip_all)]
pub async fn claim_due_reservations(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    limit: i64,
) -> sqlx::Result<Vec<Reservation>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM reservations
          WHERE status = 'reserved' AND expires_at <= $1
          ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED"
    )))
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    assemble(rows, conn).await
}

#[tracing::instrument(skip_all, fields(order_id = %r.order_id, status = r.status.as_str()))]
pub async fn insert_reservation(conn: &mut PgConnection, r: &Reservation) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO reservations (order_id, status, reason, expires_at, correlation_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(r.order_id)
    .bind(r.status.as_str())
    .bind(&r.reason)
    .bind(r.expires_at)
    .bind(r.correlation_id)
    .bind(r.created_at)
    .bind(r.updated_at)
    .execute(&mut *conn)
    .await?;
    let products: Vec<Uuid> = r.lines.iter().map(|l| l.product_id).collect();
    let quantities: Vec<i64> = r.lines.iter().map(|l| l.quantity).collect();
    let short: Vec<Option<i64>> = r.lines.iter().map(|l| l.short_available).collect();
    sqlx::query(
        "INSERT INTO reservation_lines (order_id, product_id, quantity, short_available)
         SELECT $1, * FROM UNNEST($2::uuid[], $3::bigint[], $4::bigint[])",
    )
    .bind(r.order_id)
    .bind(products)
    .bind(quantities)
    .bind(short)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes a reservation's new status (its lines never change).
#[tracing::instrument(skip_all, fields(order_id = %r.order_id, status = r.status.as_str()))]
pub async fn update_reservation(conn: &mut PgConnection, r: &Reservation) -> sqlx::Result<()> {
    sqlx::query("UPDATE reservations SET status = $2, reason = $3, updated_at = $4 WHERE order_id = $1")
        .bind(r.order_id)
        .bind(r.status.as_str())
        .bind(&r.reason)
        .bind(r.updated_at)
        .execute(conn)
        .await?;
    Ok(())
}

async fn assemble(rows: Vec<Row>, conn: &mut PgConnection) -> sqlx::Result<Vec<Reservation>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.order_id).collect();
    let lines: Vec<LineRow> = sqlx::query_as(
        "SELECT order_id, product_id, quantity, short_available FROM reservation_lines
          WHERE order_id = ANY($1) ORDER BY order_id, product_id",
    )
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            let status = ReservationStatus::parse(&r.status).ok_or_else(|| corrupt(format!("status {}", r.status)))?;
            let lines = lines
                .iter()
                .filter(|l| l.order_id == r.order_id)
                .map(|l| ReservedLine {
                    product_id: l.product_id,
                    quantity: l.quantity,
                    short_available: l.short_available,
                })
                .collect();
            Ok(Reservation {
                order_id: r.order_id,
                status,
                reason: r.reason,
                lines,
                expires_at: r.expires_at,
                correlation_id: r.correlation_id,
                created_at: r.created_at,
                updated_at: r.updated_at,
            })
        })
        .collect()
}
