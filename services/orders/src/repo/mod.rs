//! SQL for orders. Every function takes a connection, so use cases decide
//! the transaction.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Cents, Currency, Order, OrderLine, OrderStatus, Quantity, Sku};

#[tracing::instrument(skip_all, fields(order_id = %order.id))]
pub async fn insert_order(conn: &mut PgConnection, order: &Order, idempotency_key: Option<&str>) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO orders (id, customer_id, status, currency, total_cents, idempotency_key, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
         ON CONFLICT (customer_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
    )
    .bind(order.id)
    .bind(order.customer_id)
    .bind(order.status.as_str())
    .bind(order.currency.code())
    .bind(order.total.get())
    .bind(idempotency_key)
    .bind(order.created_at)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        return Ok(false);
    }
    let n = order.lines.len();
    let mut line_no = Vec::with_capacity(n);
    let mut skus = Vec::with_capacity(n);
    let mut quantities = Vec::with_capacity(n);
    let mut prices = Vec::with_capacity(n);
    for (i, l) in order.lines.iter().enumerate() {
        line_no.push(i as i32 + 1);
        skus.push(l.sku.as_str().to_string());
        quantities.push(l.quantity.get());
        prices.push(l.unit_price.get());
    }
    sqlx::query(
        "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_cents)
         SELECT $1, * FROM UNNEST($2::int[], $3::text[], $4::int[], $5::bigint[])",
    )
    .bind(order.id)
    .bind(line_no)
    .bind(skus)
    .bind(quantities)
    .bind(prices)
    .execute(conn)
    .await?;
    Ok(true)
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    customer_id: Uuid,
    status: String,
    currency: String,
    total_cents: i64,
    created_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    order_id: Uuid,
    sku: String,
    quantity: i32,
    unit_price_cents: i64,
}

const ORDER_COLUMNS: &str = "id, customer_id, status, currency, total_cents, created_at";

#[tracing::instrument(skip_all, fields(order_id = %id))]
pub async fn fetch_order(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Order>> {
    let row: Option<OrderRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1")))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(assemble(vec![row], fetch_lines(conn, &[id]).await?)?.pop())
}

#[tracing::instrument(skip_all)]
pub async fn fetch_order_by_key(conn: &mut PgConnection, customer_id: Uuid, key: &str) -> sqlx::Result<Option<Order>> {
    let id: Option<Uuid> = sqlx::query_scalar("SELECT id FROM orders WHERE customer_id = $1 AND idempotency_key = $2")
        .bind(customer_id)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    match id {
        Some(id) => fetch_order(conn, id).await,
        None => Ok(None),
    }
}

/// A page of orders, newest first, after `cursor` (an order id), optionally
/// for one customer.
#[tracing::instrument(skip_all)]
pub async fn list_orders(
    conn: &mut PgConnection,
    customer_id: Option<Uuid>,
    cursor: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Order>> {
    let rows: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders
          WHERE ($1::uuid IS NULL OR customer_id = $1)
            AND ($2::uuid IS NULL OR id < $2)
          ORDER BY id DESC LIMIT $3"
    )))
    .bind(customer_id)
    .bind(cursor)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    assemble(rows, fetch_lines(conn, &ids).await?)
}

async fn fetch_lines(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<LineRow>> {
    sqlx::query_as(
        "SELECT order_id, sku, quantity, unit_price_cents FROM order_lines
          WHERE order_id = ANY($1) ORDER BY order_id, line_no",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

fn assemble(rows: Vec<OrderRow>, lines: Vec<LineRow>) -> sqlx::Result<Vec<Order>> {
    let corrupt = |what: String| sqlx::Error::Decode(what.into());
    rows.into_iter()
        .map(|r| {
            let lines = lines
                .iter()
                .filter(|l| l.order_id == r.id)
                .map(|l| {
                    let sku = Sku::parse(&l.sku).map_err(|e| corrupt(format!("sku: {e}")))?;
                    let q = Quantity::parse(i64::from(l.quantity)).map_err(|e| corrupt(format!("quantity: {e}")))?;
                    let p = Cents::parse(l.unit_price_cents).map_err(|e| corrupt(format!("price: {e}")))?;
                    OrderLine::new(sku, q, p).map_err(|e| corrupt(e.to_string()))
                })
                .collect::<sqlx::Result<Vec<_>>>()?;
            Ok(Order {
                id: r.id,
                customer_id: r.customer_id,
                status: OrderStatus::parse(&r.status).ok_or_else(|| corrupt(format!("status {}", r.status)))?,
                currency: Currency::parse(r.currency.trim()).map_err(|e| corrupt(e.to_string()))?,
                lines,
                total: Cents::parse(r.total_cents).map_err(|e| corrupt(e.to_string()))?,
                created_at: r.created_at,
            })
        })
        .collect()
}
