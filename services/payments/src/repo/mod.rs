//! SQL for payments. Every function takes a connection, so use cases decide
//! the transaction.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Cause, Method, Payment, Status};

/// The channel the worker listens on for new work.
pub const WORK_CHANNEL: &str = "payments_work";

const COLUMNS: &str = "id, order_id, customer_id, amount_cents, currency, method, card_token, status,
    idempotency_key, provider_charge_id, pix_code, pix_expires_at, failure_reason, failure_detail,
    refunded_cents, provider_refund_id, announce_refund, charge_message_id, charge_correlation_id,
    refund_message_id, refund_correlation_id, attempts, next_attempt_at, lease_id, last_error,
    created_at, updated_at, captured_at";

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    order_id: Uuid,
    customer_id: Uuid,
    amount_cents: i64,
    currency: String,
    method: String,
    card_token: Option<String>,
    status: String,
    idempotency_key: String,
    provider_charge_id: Option<String>,
    pix_code: Option<String>,
    pix_expires_at: Option<OffsetDateTime>,
    failure_reason: Option<String>,
    failure_detail: Option<String>,
    refunded_cents: i64,
    provider_refund_id: Option<String>,
    announce_refund: bool,
    charge_message_id: Uuid,
    charge_correlation_id: Uuid,
    refund_message_id: Option<Uuid>,
    refund_correlation_id: Option<Uuid>,
    attempts: i32,
    next_attempt_at: OffsetDateTime,
    lease_id: Option<Uuid>,
    last_error: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    captured_at: Option<OffsetDateTime>,
}

impl TryFrom<Row> for Payment {
    type Error = sqlx::Error;

    fn try_from(r: Row) -> Result<Self, Self::Error> {
        let decode = |what: &str, v: &str| sqlx::Error::Decode(format!("unknown payment {what} {v:?}").into());
        let status = Status::parse(&r.status).ok_or_else(|| decode("status", &r.status))?;
        let method = match (r.method.as_str(), r.card_token) {
            ("card", Some(token)) => Method::Card { token },
            ("pix", _) => Method::Pix,
            (other, _) => return Err(decode("method", other)),
        };
        let refund_cause = match (r.refund_message_id, r.refund_correlation_id) {
            (Some(message_id), Some(correlation_id)) => Some(Cause { message_id, correlation_id }),
            _ => None,
        };
        Ok(Payment {
            id: r.id,
            order_id: r.order_id,
            customer_id: r.customer_id,
            amount_cents: r.amount_cents,
            currency: r.currency.trim().to_string(),
            method,
            status,
            idempotency_key: r.idempotency_key,
            provider_charge_id: r.provider_charge_id,
            pix_code: r.pix_code,
            pix_expires_at: r.pix_expires_at,
            failure_reason: r.failure_reason,
            failure_detail: r.failure_detail,
            refunded_cents: r.refunded_cents,
            provider_refund_id: r.provider_refund_id,
            announce_refund: r.announce_refund,
            charge_cause: Cause { message_id: r.charge_message_id, correlation_id: r.charge_correlation_id },
            refund_cause,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            lease_id: r.lease_id,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
            captured_at: r.captured_at,
        })
    }
}

fn to_payments(rows: Vec<Row>) -> sqlx::Result<Vec<Payment>> {
    rows.into_iter().map(Payment::try_from).collect()
}

/// Inserts `p` unless the order already has a payment; true if inserted.
#[tracing::instrument(skip_all, fields(payment_id = %p.id, order_id = %p.order_id))]
pub async fn insert_payment(conn: &mut PgConnection, p: &Payment) -> sqlx::Result<bool> {
    let token = match &p.method {
        Method::Card { token } => Some(token.as_str()),
        Method::Pix => None,
    };
    let done = sqlx::query(
        "INSERT INTO payments (id, order_id, customer_id, amount_cents, currency, method, card_token, status,
             idempotency_key, failure_reason, failure_detail, charge_message_id, charge_correlation_id,
             next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(p.id)
    .bind(p.order_id)
    .bind(p.customer_id)
    .bind(p.amount_cents)
    .bind(&p.currency)
    .bind(p.method.kind())
    .bind(token)
    .bind(p.status.as_str())
    .bind(&p.idempotency_key)
    .bind(&p.failure_reason)
    .bind(&p.failure_detail)
    .bind(p.charge_cause.message_id)
    .bind(p.charge_cause.correlation_id)
    .bind(p.next_attempt_at)
    .bind(p.created_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes the mutable state of `p`. A payment without a lease has its
/// `locked_until` cleared; with one, it keeps it.
#[tracing::instrument(skip_all, fields(payment_id = %p.id, status = p.status.as_str()))]
pub async fn update_payment(conn: &mut PgConnection, p: &Payment) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE payments SET status = $2, provider_charge_id = $3, pix_code = $4, pix_expires_at = $5,
             failure_reason = $6, failure_detail = $7, refunded_cents = $8, provider_refund_id = $9,
             announce_refund = $10, refund_message_id = $11, refund_correlation_id = $12, attempts = $13,
             next_attempt_at = $14, lease_id = $15,
             locked_until = CASE WHEN $15::uuid IS NULL THEN NULL ELSE locked_until END,
             last_error = $16, updated_at = $17, captured_at = $18
         WHERE id = $1",
    )
    .bind(p.id)
    .bind(p.status.as_str())
    .bind(&p.provider_charge_id)
    .bind(&p.pix_code)
    .bind(p.pix_expires_at)
    .bind(&p.failure_reason)
    .bind(&p.failure_detail)
    .bind(p.refunded_cents)
    .bind(&p.provider_refund_id)
    .bind(p.announce_refund)
    .bind(p.refund_cause.map(|c| c.message_id))
    .bind(p.refund_cause.map(|c| c.correlation_id))
    .bind(p.attempts)
    .bind(p.next_attempt_at)
    .bind(p.lease_id)
    .bind(&p.last_error)
    .bind(p.updated_at)
    .bind(p.captured_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The order's payment, locked until the transaction ends.
pub async fn lock_by_order(conn: &mut PgConnection, order_id: Uuid) -> sqlx::Result<Option<Payment>> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE order_id = $1 FOR UPDATE");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(order_id).fetch_optional(conn).await?;
    row.map(Payment::try_from).transpose()
}

/// The payment, locked until the transaction ends.
pub async fn lock_payment(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Payment>> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE id = $1 FOR UPDATE");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await?;
    row.map(Payment::try_from).transpose()
}

/// Payments newest first, filtered by any of id, order, customer, and after `cursor`.
pub async fn list_payments(
    conn: &mut PgConnection,
    id: Option<Uuid>,
    order_id: Option<Uuid>,
    customer_id: Option<Uuid>,
    cursor: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Payment>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM payments
          WHERE ($1::uuid IS NULL OR id = $1)
            AND ($2::uuid IS NULL OR order_id = $2)
            AND ($3::uuid IS NULL OR customer_id = $3)
            AND ($4::uuid IS NULL OR id < $4)
          ORDER BY id DESC LIMIT $5"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(order_id)
        .bind(customer_id)
        .bind(cursor)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    to_payments(rows)
}

/// A payment claimed by the worker, with the lease it holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub payment: Payment,
    /// The trace context of the command that gave this work.
    pub traceparent: Option<String>,
    pub lease_id: Uuid,
    /// The charge deadline (counted from the payment's creation) has passed.
    pub past_deadline: bool,
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    #[sqlx(flatten)]
    row: Row,
    past_deadline: bool,
    traceparent: Option<String>,
}

/// Claims up to `limit` payments with provider work whose time has come and
/// whose lease is free, leasing them for `lease_secs` (one statement, so the
/// row locks last only while it runs; the lease is what keeps other workers
/// away). Rows another transaction holds are skipped.
pub async fn claim_due(
    conn: &mut PgConnection,
    lease_secs: f64,
    deadline_secs: f64,
    limit: i64,
) -> sqlx::Result<Vec<Claimed>> {
    let statuses: Vec<&str> = Status::ALL.into_iter().filter(|s| s.is_due_work()).map(Status::as_str).collect();
    let sql = format!(
        "UPDATE payments SET locked_until = now() + make_interval(secs => $1), lease_id = gen_random_uuid()
          WHERE id IN (
                SELECT id FROM payments
                 WHERE status = ANY($3) AND next_attempt_at <= now()
                   AND (locked_until IS NULL OR locked_until < now())
                 ORDER BY next_attempt_at LIMIT $4
                   FOR UPDATE SKIP LOCKED)
      RETURNING {COLUMNS}, created_at + make_interval(secs => $2) <= now() AS past_deadline, traceparent"
    );
    let rows: Vec<ClaimedRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(lease_secs)
        .bind(deadline_secs)
        .bind(&statuses)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.into_iter()
        .map(|r| {
            let payment = Payment::try_from(r.row)?;
            let lease_id = payment.lease_id.ok_or_else(|| sqlx::Error::Decode("a claimed row has no lease".into()))?;
            Ok(Claimed { payment, traceparent: r.traceparent, lease_id, past_deadline: r.past_deadline })
        })
        .collect()
}

/// Remembers the trace context of the command that gave the payment work.
pub async fn set_traceparent(conn: &mut PgConnection, id: Uuid, traceparent: Option<&str>) -> sqlx::Result<()> {
    sqlx::query("UPDATE payments SET traceparent = $2 WHERE id = $1").bind(id).bind(traceparent).execute(conn).await?;
    Ok(())
}

/// Wakes the worker once the transaction commits.
pub async fn notify_work(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, '')").bind(WORK_CHANNEL).execute(conn).await?;
    Ok(())
}

pub async fn tombstone_exists(conn: &mut PgConnection, order_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM charge_tombstones WHERE order_id = $1)")
        .bind(order_id)
        .fetch_one(conn)
        .await
}

/// Records that `order_id` must never be charged.
pub async fn insert_tombstone(
    conn: &mut PgConnection,
    order_id: Uuid,
    reason: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO charge_tombstones (order_id, reason, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Serializes the handling of one order's commands (a charge and a refund
/// handled at once by two consumers) until the transaction ends.
pub async fn lock_order(conn: &mut PgConnection, order_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7107))").bind(order_id).execute(conn).await?;
    Ok(())
}
