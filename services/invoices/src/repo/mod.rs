//! SQL for invoices. Every function takes a connection, so use cases decide
//! the transaction.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Invoice, InvoiceLine};

/// Takes the next number of `series`, locking the series row until the
/// transaction ends (so numbers have no gaps).
pub async fn take_number(conn: &mut PgConnection, series: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "UPDATE invoice_series SET next_number = next_number + 1 WHERE series = $1 RETURNING next_number - 1",
    )
    .bind(series)
    .fetch_one(conn)
    .await
}

pub async fn invoice_exists_for_order(conn: &mut PgConnection, order_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM invoices WHERE order_id = $1)")
        .bind(order_id)
        .fetch_one(conn)
        .await
}

#[tracing::instrument(skip_all, fields(invoice_id = %inv.id, order_id = %inv.order_id))]
pub async fn insert_invoice(conn: &mut PgConnection, inv: &Invoice) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO invoices (id, order_id, customer_id, series, number, currency, freight_cents, total_cents, issued_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(inv.id)
    .bind(inv.order_id)
    .bind(inv.customer_id)
    .bind(&inv.series)
    .bind(inv.number)
    .bind(&inv.currency)
    .bind(inv.freight_cents)
    .bind(inv.total_cents)
    .bind(inv.issued_at)
    .execute(&mut *conn)
    .await?;
    let line_no: Vec<i32> = (1..=inv.lines.len() as i32).collect();
    let skus: Vec<&str> = inv.lines.iter().map(|l| l.sku.as_str()).collect();
    let qty: Vec<i32> = inv.lines.iter().map(|l| l.quantity).collect();
    let price: Vec<i64> = inv.lines.iter().map(|l| l.unit_price_cents).collect();
    let total: Vec<i64> = inv.lines.iter().map(|l| l.line_total_cents).collect();
    sqlx::query(
        "INSERT INTO invoice_lines (invoice_id, line_no, sku, quantity, unit_price_cents, line_total_cents)
         SELECT $1, * FROM UNNEST($2::int[], $3::text[], $4::int[], $5::bigint[], $6::bigint[])",
    )
    .bind(inv.id)
    .bind(line_no)
    .bind(skus)
    .bind(qty)
    .bind(price)
    .bind(total)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    order_id: Uuid,
    customer_id: Uuid,
    series: String,
    number: i64,
    currency: String,
    freight_cents: i64,
    total_cents: i64,
    issued_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    invoice_id: Uuid,
    sku: String,
    quantity: i32,
    unit_price_cents: i64,
    line_total_cents: i64,
}

pub async fn fetch_invoice(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Invoice>> {
    Ok(list_invoices(conn, Some(id), None, None, None, 1).await?.pop())
}

/// Invoices newest first, filtered by any of id, order, customer, and after `cursor`.
pub async fn list_invoices(
    conn: &mut PgConnection,
    id: Option<Uuid>,
    order_id: Option<Uuid>,
    customer_id: Option<Uuid>,
    cursor: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Invoice>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, order_id, customer_id, series, number, currency, freight_cents, total_cents, issued_at
           FROM invoices
          WHERE ($1::uuid IS NULL OR id = $1)
            AND ($2::uuid IS NULL OR order_id = $2)
            AND ($3::uuid IS NULL OR customer_id = $3)
            AND ($4::uuid IS NULL OR id < $4)
          ORDER BY id DESC LIMIT $5",
    )
    .bind(id)
    .bind(order_id)
    .bind(customer_id)
    .bind(cursor)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let lines: Vec<LineRow> = sqlx::query_as(
        "SELECT invoice_id, sku, quantity, unit_price_cents, line_total_cents
           FROM invoice_lines WHERE invoice_id = ANY($1) ORDER BY invoice_id, line_no",
    )
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Invoice {
            lines: lines
                .iter()
                .filter(|l| l.invoice_id == r.id)
                .map(|l| InvoiceLine {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                    unit_price_cents: l.unit_price_cents,
                    line_total_cents: l.line_total_cents,
                })
                .collect(),
            id: r.id,
            order_id: r.order_id,
            customer_id: r.customer_id,
            series: r.series,
            number: r.number,
            currency: r.currency.trim().to_string(),
            freight_cents: r.freight_cents,
            total_cents: r.total_cents,
            issued_at: r.issued_at,
        })
        .collect())
}
