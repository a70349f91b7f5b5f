//! SQL for orders. Every function takes a connection, so use cases decide
//! the transaction.

use serde_json::{Value, json};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::saga::Entry;
use crate::domain::{
    Address, CancelReason, Cents, Cep, Checkout, Currency, Email, Order, OrderLine, OrderStatus, PaymentMethod,
    Quantity, SagaState, Shipping, Sku, Step, Uf,
};

#[tracing::instrument(skip_all, fields(order_id = %order.id))]
pub async fn insert_order(
    conn: &mut PgConnection,
    order: &Order,
    idempotency_key: Option<&str>,
    correlation_id: Uuid,
) -> sqlx::Result<bool> {
    let c = order.checkout.as_ref();
    let inserted = sqlx::query(
        "INSERT INTO orders (id, customer_id, status, currency, total_cents, idempotency_key, created_at, updated_at,
                             freight_cents, contact_email, shipping, payment_method, saga_step, step_deadline,
                             correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (customer_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
    )
    .bind(order.id)
    .bind(order.customer_id)
    .bind(order.status().as_str())
    .bind(order.currency.code())
    .bind(order.total.get())
    .bind(idempotency_key)
    .bind(order.created_at)
    .bind(order.freight().get())
    .bind(c.map(|c| c.contact_email.as_str()))
    .bind(c.map(|c| shipping_json(&c.shipping)))
    .bind(c.map(|c| payment_json(&c.payment)))
    .bind(order.saga.step.as_str())
    .bind(order.saga.deadline)
    .bind(correlation_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        return Ok(false);
    }
    let n = order.lines.len();
    let mut line_no = Vec::with_capacity(n);
    let mut products = Vec::with_capacity(n);
    let mut skus = Vec::with_capacity(n);
    let mut quantities = Vec::with_capacity(n);
    let mut prices = Vec::with_capacity(n);
    for (i, l) in order.lines.iter().enumerate() {
        line_no.push(i as i32 + 1);
        products.push(l.product_id);
        skus.push(l.sku.as_str().to_string());
        quantities.push(l.quantity.get());
        prices.push(l.unit_price.get());
    }
    sqlx::query(
        "INSERT INTO order_lines (order_id, line_no, product_id, sku, quantity, unit_price_cents)
         SELECT $1, * FROM UNNEST($2::int[], $3::uuid[], $4::text[], $5::int[], $6::bigint[])",
    )
    .bind(order.id)
    .bind(line_no)
    .bind(products)
    .bind(skus)
    .bind(quantities)
    .bind(prices)
    .execute(conn)
    .await?;
    Ok(true)
}

fn shipping_json(s: &Shipping) -> Value {
    let a = &s.address;
    json!({
        "quote_id": s.quote_id,
        "freight_cents": s.freight.get(),
        "address": {
            "recipient": a.recipient, "street": a.street, "number": a.number, "complement": a.complement,
            "district": a.district, "city": a.city, "state": a.state.as_str(), "cep": a.cep.as_str(),
        },
    })
}

fn payment_json(p: &PaymentMethod) -> Value {
    match p {
        PaymentMethod::Card { token } => json!({"type": "card", "token": token}),
        PaymentMethod::Pix => json!({"type": "pix"}),
    }
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    customer_id: Uuid,
    status: String,
    currency: String,
    total_cents: i64,
    created_at: OffsetDateTime,
    contact_email: Option<String>,
    shipping: Option<Value>,
    payment_method: Option<Value>,
    saga_step: Option<String>,
    step_deadline: Option<OffsetDateTime>,
    cancel_reason: Option<String>,
    reservation_expires_at: Option<OffsetDateTime>,
    payment_id: Option<Uuid>,
    tracking_code: Option<String>,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    order_id: Uuid,
    product_id: Option<Uuid>,
    sku: String,
    quantity: i32,
    unit_price_cents: i64,
}

const ORDER_COLUMNS: &str = "id, customer_id, status, currency, total_cents, created_at, contact_email, shipping,
    payment_method, saga_step, step_deadline, cancel_reason, reservation_expires_at, payment_id, tracking_code";

#[tracing::instrument(skip_all, fields(order_id = %id))]
pub async fn fetch_order(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Order>> {
    fetch_one(conn, id, "").await
}

/// The order, locked until the transaction ends: the saga's changes to one
/// order happen one at a time.
#[tracing::instrument(skip_all, fields(order_id = %id))]
pub async fn lock_order(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Order>> {
    fetch_one(conn, id, " FOR UPDATE").await
}

async fn fetch_one(conn: &mut PgConnection, id: Uuid, lock: &str) -> sqlx::Result<Option<Order>> {
    let row: Option<OrderRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1{lock}")))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(assemble(vec![row], fetch_lines(conn, &[id]).await?)?.pop())
}

/// The saga's correlation id for the order's messages.
pub async fn correlation_id(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT correlation_id FROM orders WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
        .map(Option::flatten)
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

/// Stores where the saga stands.
pub async fn save_saga(conn: &mut PgConnection, id: Uuid, s: &SagaState, now: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE orders SET status = $2, saga_step = $3, step_deadline = $4, cancel_reason = $5,
                reservation_expires_at = $6, payment_id = $7, tracking_code = $8, updated_at = $9
          WHERE id = $1",
    )
    .bind(id)
    .bind(s.status.as_str())
    .bind(s.step.as_str())
    .bind(s.deadline)
    .bind(s.cancel_reason.map(CancelReason::as_str))
    .bind(s.reservation_expires_at)
    .bind(s.payment_id)
    .bind(s.tracking_code.as_deref())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn append_timeline(
    conn: &mut PgConnection,
    id: Uuid,
    entries: &[Entry],
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let steps: Vec<&str> = entries.iter().map(|e| e.step).collect();
    let outcomes: Vec<&str> = entries.iter().map(|e| e.outcome.as_str()).collect();
    sqlx::query(
        "INSERT INTO order_timeline (order_id, step, outcome, at)
         SELECT $1, s, o, $4 FROM UNNEST($2::text[], $3::text[]) WITH ORDINALITY AS t(s, o, n) ORDER BY n",
    )
    .bind(id)
    .bind(steps)
    .bind(outcomes)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// One line of an order's timeline.
#[derive(Debug, sqlx::FromRow)]
pub struct TimelineRow {
    pub step: String,
    pub outcome: String,
    pub at: OffsetDateTime,
}

pub async fn fetch_timeline(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Vec<TimelineRow>> {
    sqlx::query_as("SELECT step, outcome, at FROM order_timeline WHERE order_id = $1 ORDER BY seq")
        .bind(id)
        .fetch_all(conn)
        .await
}

/// Orders whose current step's deadline passed, locked (skipping those
/// another replica holds).
pub async fn claim_timed_out(conn: &mut PgConnection, now: OffsetDateTime, limit: i64) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM orders WHERE step_deadline <= $1 ORDER BY step_deadline LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

async fn fetch_lines(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<LineRow>> {
    sqlx::query_as(
        "SELECT order_id, product_id, sku, quantity, unit_price_cents FROM order_lines
          WHERE order_id = ANY($1) ORDER BY order_id, line_no",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

fn corrupt(what: String) -> sqlx::Error {
    sqlx::Error::Decode(what.into())
}

fn assemble(rows: Vec<OrderRow>, lines: Vec<LineRow>) -> sqlx::Result<Vec<Order>> {
    rows.into_iter()
        .map(|r| {
            let lines = lines
                .iter()
                .filter(|l| l.order_id == r.id)
                .map(|l| {
                    let sku = Sku::parse(&l.sku).map_err(|e| corrupt(format!("sku: {e}")))?;
                    let q = Quantity::parse(i64::from(l.quantity)).map_err(|e| corrupt(format!("quantity: {e}")))?;
                    let p = Cents::parse(l.unit_price_cents).map_err(|e| corrupt(format!("price: {e}")))?;
                    OrderLine::new(l.product_id, sku, q, p).map_err(|e| corrupt(e.to_string()))
                })
                .collect::<sqlx::Result<Vec<_>>>()?;
            let checkout = match (&r.contact_email, &r.shipping, &r.payment_method) {
                (Some(email), Some(shipping), Some(payment)) => Some(Checkout {
                    shipping: parse_shipping(shipping)?,
                    payment: parse_payment(payment)?,
                    contact_email: Email::parse(email).map_err(|e| corrupt(format!("contact_email: {e}")))?,
                }),
                _ => None,
            };
            let status = OrderStatus::parse(&r.status).ok_or_else(|| corrupt(format!("status {}", r.status)))?;
            let step = match r.saga_step.as_deref() {
                Some(s) => Step::parse(s).ok_or_else(|| corrupt(format!("saga step {s}")))?,
                None => Step::Done,
            };
            let cancel_reason = r.cancel_reason.as_deref().map(parse_reason).transpose()?;
            Ok(Order {
                id: r.id,
                customer_id: r.customer_id,
                currency: Currency::parse(r.currency.trim()).map_err(|e| corrupt(e.to_string()))?,
                lines,
                checkout,
                total: Cents::parse(r.total_cents).map_err(|e| corrupt(e.to_string()))?,
                created_at: r.created_at,
                saga: SagaState {
                    status,
                    step,
                    deadline: r.step_deadline,
                    cancel_reason,
                    reservation_expires_at: r.reservation_expires_at,
                    payment_id: r.payment_id,
                    tracking_code: r.tracking_code,
                },
            })
        })
        .collect()
}

fn parse_reason(s: &str) -> sqlx::Result<CancelReason> {
    Ok(match s {
        "out_of_stock" => CancelReason::OutOfStock,
        "payment_declined" => CancelReason::PaymentDeclined,
        "payment_failed" => CancelReason::PaymentFailed,
        "timeout" => CancelReason::Timeout,
        "customer_request" => CancelReason::CustomerRequest,
        other => return Err(corrupt(format!("cancel reason {other}"))),
    })
}

fn parse_shipping(v: &Value) -> sqlx::Result<Shipping> {
    let bad = |f: &str| corrupt(format!("shipping.{f}"));
    let s = |v: &Value, f: &str| v[f].as_str().map(str::to_string).ok_or_else(|| bad(f));
    let a = &v["address"];
    Ok(Shipping {
        quote_id: v["quote_id"].as_str().and_then(|s| Uuid::parse_str(s).ok()).ok_or_else(|| bad("quote_id"))?,
        freight: v["freight_cents"].as_i64().and_then(|c| Cents::parse(c).ok()).ok_or_else(|| bad("freight_cents"))?,
        address: Address {
            recipient: s(a, "recipient")?,
            street: s(a, "street")?,
            number: s(a, "number")?,
            complement: a["complement"].as_str().map(str::to_string),
            district: s(a, "district")?,
            city: s(a, "city")?,
            state: Uf::parse(&s(a, "state")?).map_err(|_| bad("state"))?,
            cep: Cep::parse(&s(a, "cep")?).map_err(|_| bad("cep"))?,
        },
    })
}

fn parse_payment(v: &Value) -> sqlx::Result<PaymentMethod> {
    match (v["type"].as_str(), v["token"].as_str()) {
        (Some("card"), Some(token)) => Ok(PaymentMethod::Card { token: token.to_string() }),
        (Some("pix"), _) => Ok(PaymentMethod::Pix),
        _ => Err(corrupt("payment_method".into())),
    }
}
