//! SQL for notifications. Every function takes a connection (or the pool,
//! for the delivery worker's single statements), so callers decide the
//! transaction.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Email, EmailKind, EmailStatus, Recipient};

/// The channel `pg_notify` wakes the delivery worker on.
pub const EMAIL_QUEUED_CHANNEL: &str = "notifications_email_queued";

/// Records who receives the order's e-mails; the first record wins.
#[tracing::instrument(skip_all, fields(order_id = %r.order_id))]
pub async fn insert_recipient(conn: &mut PgConnection, r: &Recipient, now: OffsetDateTime) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO recipients (order_id, customer_id, email, recorded_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(r.order_id)
    .bind(r.customer_id)
    .bind(&r.email)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn fetch_recipient(conn: &mut PgConnection, order_id: Uuid) -> sqlx::Result<Option<Recipient>> {
    let row: Option<(Uuid, Uuid, Option<String>)> =
        sqlx::query_as("SELECT order_id, customer_id, email FROM recipients WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(order_id, customer_id, email)| Recipient { order_id, customer_id, email }))
}

/// Stores `e` unless an e-mail of its source message exists; true when
/// stored. A pending e-mail wakes the delivery worker when the transaction
/// commits.
#[tracing::instrument(skip_all, fields(email_id = %e.id, kind = e.kind.as_str(), order_id = %e.order_id))]
pub async fn insert_email(conn: &mut PgConnection, e: &Email) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO emails (id, kind, order_id, customer_id, to_address, subject, body, status,
                             source_message_id, attempts, next_attempt_at, last_error, created_at, sent_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (source_message_id) DO NOTHING",
    )
    .bind(e.id)
    .bind(e.kind.as_str())
    .bind(e.order_id)
    .bind(e.customer_id)
    .bind(&e.to)
    .bind(&e.subject)
    .bind(&e.body)
    .bind(e.status.as_str())
    .bind(e.source_message_id)
    .bind(e.attempts)
    .bind(e.next_attempt_at)
    .bind(&e.last_error)
    .bind(e.created_at)
    .bind(e.sent_at)
    .execute(&mut *conn)
    .await?;
    let stored = done.rows_affected() == 1;
    if stored && e.status == EmailStatus::Pending {
        sqlx::query("SELECT pg_notify($1, '')").bind(EMAIL_QUEUED_CHANNEL).execute(conn).await?;
    }
    Ok(stored)
}

const EMAIL_COLUMNS: &str = "id, kind, order_id, customer_id, to_address, subject, body, status, source_message_id,
                             attempts, next_attempt_at, last_error, created_at, sent_at";

#[derive(sqlx::FromRow)]
struct EmailRow {
    id: Uuid,
    kind: String,
    order_id: Uuid,
    customer_id: Uuid,
    to_address: Option<String>,
    subject: String,
    body: String,
    status: String,
    source_message_id: Uuid,
    attempts: i32,
    next_attempt_at: OffsetDateTime,
    last_error: Option<String>,
    created_at: OffsetDateTime,
    sent_at: Option<OffsetDateTime>,
}

impl TryFrom<EmailRow> for Email {
    type Error = sqlx::Error;

    fn try_from(r: EmailRow) -> Result<Self, Self::Error> {
        let corrupt = |e: crate::domain::UnknownValue| sqlx::Error::Decode(Box::new(e));
        Ok(Email {
            id: r.id,
            kind: EmailKind::parse(&r.kind).map_err(corrupt)?,
            order_id: r.order_id,
            customer_id: r.customer_id,
            to: r.to_address,
            subject: r.subject,
            body: r.body,
            status: EmailStatus::parse(&r.status).map_err(corrupt)?,
            source_message_id: r.source_message_id,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            created_at: r.created_at,
            sent_at: r.sent_at,
        })
    }
}

pub async fn fetch_email(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Email>> {
    let sql = format!("SELECT {EMAIL_COLUMNS} FROM emails WHERE id = $1");
    let row: Option<EmailRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await?;
    row.map(Email::try_from).transpose()
}

/// E-mails newest first, filtered by any of order, kind, customer, and after `cursor`.
pub async fn list_emails(
    conn: &mut PgConnection,
    order_id: Option<Uuid>,
    kind: Option<EmailKind>,
    customer_id: Option<Uuid>,
    cursor: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Email>> {
    let sql = format!(
        "SELECT {EMAIL_COLUMNS} FROM emails
          WHERE ($1::uuid IS NULL OR order_id = $1)
            AND ($2::text IS NULL OR kind = $2)
            AND ($3::uuid IS NULL OR customer_id = $3)
            AND ($4::uuid IS NULL OR id < $4)
          ORDER BY id DESC LIMIT $5"
    );
    let rows: Vec<EmailRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .bind(kind.map(EmailKind::as_str))
        .bind(customer_id)
        .bind(cursor)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(Email::try_from).collect()
}

/// Leases up to `limit` due pending e-mails to the caller for `lease` and
/// counts the attempt. Rows another worker holds are skipped, so several
/// replicas share the work without sending one e-mail twice.
/// Remembers the trace context of the event that queued the e-mail.
pub async fn set_traceparent(conn: &mut PgConnection, id: Uuid, traceparent: Option<&str>) -> sqlx::Result<()> {
    sqlx::query("UPDATE emails SET traceparent = $2 WHERE id = $1").bind(id).bind(traceparent).execute(conn).await?;
    Ok(())
}

/// An e-mail claimed for sending, with the trace context it continues.
pub struct Claimed {
    pub email: Email,
    pub traceparent: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    #[sqlx(flatten)]
    row: EmailRow,
    traceparent: Option<String>,
}

pub async fn claim_due(db: &PgPool, lease: Duration, limit: i64) -> sqlx::Result<Vec<Claimed>> {
    let sql = format!(
        "UPDATE emails SET attempts = attempts + 1, leased_until = now() + make_interval(secs => $1)
          WHERE id IN (SELECT id FROM emails
                        WHERE status = 'pending' AND next_attempt_at <= now()
                          AND (leased_until IS NULL OR leased_until <= now())
                        ORDER BY next_attempt_at
                        LIMIT $2
                        FOR UPDATE SKIP LOCKED)
          RETURNING {EMAIL_COLUMNS}, traceparent"
    );
    let rows: Vec<ClaimedRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(lease.as_secs_f64()).bind(limit).fetch_all(db).await?;
    rows.into_iter().map(|r| Ok(Claimed { email: Email::try_from(r.row)?, traceparent: r.traceparent })).collect()
}

/// The e-mail went out; false when it was no longer pending.
pub async fn mark_sent(db: &PgPool, id: Uuid, now: OffsetDateTime) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE emails SET status = 'sent', sent_at = $2, leased_until = NULL, last_error = NULL
          WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The attempt failed; the e-mail is tried again at `next_attempt_at`.
pub async fn schedule_retry(db: &PgPool, id: Uuid, error: &str, next_attempt_at: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE emails SET next_attempt_at = $2, leased_until = NULL, last_error = $3
          WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(next_attempt_at)
    .bind(error)
    .execute(db)
    .await?;
    Ok(())
}

/// The e-mail will not be sent; false when it was no longer pending.
pub async fn mark_failed(db: &PgPool, id: Uuid, error: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE emails SET status = 'failed', leased_until = NULL, last_error = $2 WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(error)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}
