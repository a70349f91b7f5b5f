//! SQL for quotes, shipments and early cancellations. Every function takes a
//! connection, so use cases decide the transaction.

use contracts::orders::AddressV1;
use sqlx::PgConnection;
use sqlx::types::Json;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::domain::{Booked, CarrierService, DomainError, Quote, QuoteSource, Shipment, ShipmentStatus};

fn decode(e: DomainError) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

// Quotes ----------------------------------------------------------------------

#[tracing::instrument(skip_all, fields(quote_id = %q.id))]
pub async fn insert_quote(conn: &mut PgConnection, q: &Quote) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO quotes (id, origin_cep, destination_cep, service, price_cents, currency, delivery_days,
                             weight_grams, source, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(q.id)
    .bind(&q.origin_cep)
    .bind(&q.destination_cep)
    .bind(q.service.as_str())
    .bind(q.price_cents)
    .bind(&q.currency)
    .bind(q.delivery_days)
    .bind(q.weight_grams)
    .bind(q.source.as_str())
    .bind(q.created_at)
    .bind(q.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct QuoteRow {
    id: Uuid,
    origin_cep: String,
    destination_cep: String,
    service: String,
    price_cents: i64,
    currency: String,
    delivery_days: i32,
    weight_grams: i64,
    source: String,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

impl TryFrom<QuoteRow> for Quote {
    type Error = sqlx::Error;

    fn try_from(r: QuoteRow) -> sqlx::Result<Quote> {
        Ok(Quote {
            id: r.id,
            origin_cep: r.origin_cep,
            destination_cep: r.destination_cep,
            service: CarrierService::parse(&r.service).map_err(decode)?,
            price_cents: r.price_cents,
            currency: r.currency.trim().to_string(),
            delivery_days: r.delivery_days,
            weight_grams: r.weight_grams,
            source: QuoteSource::parse(&r.source).map_err(decode)?,
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

pub async fn fetch_quote(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Quote>> {
    let row: Option<QuoteRow> = sqlx::query_as(
        "SELECT id, origin_cep, destination_cep, service, price_cents, currency, delivery_days, weight_grams,
                source, created_at, expires_at
           FROM quotes WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(Quote::try_from).transpose()
}

// Early cancellations -----------------------------------------------------------

/// Remembers that `order_id` was cancelled (once).
pub async fn insert_cancellation(
    conn: &mut PgConnection,
    order_id: Uuid,
    reason: &str,
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO order_cancellations (order_id, reason, cancelled_at) VALUES ($1, $2, $3)
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(reason)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn is_cancelled(conn: &mut PgConnection, order_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM order_cancellations WHERE order_id = $1)")
        .bind(order_id)
        .fetch_one(conn)
        .await
}

// Shipments -------------------------------------------------------------------

const SHIPMENT_COLUMNS: &str = "id, order_id, customer_id, quote_id, service, weight_grams, origin_cep, \
     destination_cep, address, status, carrier_shipment_id, tracking_code, estimated_delivery, attempts, \
     last_error, cause_message_id, correlation_id, traceparent, created_at, updated_at, scheduled_at, cancelled_at";

#[derive(sqlx::FromRow)]
struct ShipmentRow {
    id: Uuid,
    order_id: Uuid,
    customer_id: Uuid,
    quote_id: Option<Uuid>,
    service: String,
    weight_grams: i64,
    origin_cep: String,
    destination_cep: String,
    address: Json<AddressV1>,
    status: String,
    carrier_shipment_id: Option<String>,
    tracking_code: Option<String>,
    estimated_delivery: Option<Date>,
    attempts: i32,
    last_error: Option<String>,
    cause_message_id: Uuid,
    correlation_id: Uuid,
    traceparent: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    scheduled_at: Option<OffsetDateTime>,
    cancelled_at: Option<OffsetDateTime>,
}

impl TryFrom<ShipmentRow> for Shipment {
    type Error = sqlx::Error;

    fn try_from(r: ShipmentRow) -> sqlx::Result<Shipment> {
        Ok(Shipment {
            id: r.id,
            order_id: r.order_id,
            customer_id: r.customer_id,
            quote_id: r.quote_id,
            service: CarrierService::parse(&r.service).map_err(decode)?,
            weight_grams: r.weight_grams,
            origin_cep: r.origin_cep,
            destination_cep: r.destination_cep,
            address: r.address.0,
            status: ShipmentStatus::parse(&r.status).map_err(decode)?,
            carrier_shipment_id: r.carrier_shipment_id,
            tracking_code: r.tracking_code,
            estimated_delivery: r.estimated_delivery,
            attempts: r.attempts,
            last_error: r.last_error,
            cause_message_id: r.cause_message_id,
            correlation_id: r.correlation_id,
            traceparent: r.traceparent,
            created_at: r.created_at,
            updated_at: r.updated_at,
            scheduled_at: r.scheduled_at,
            cancelled_at: r.cancelled_at,
        })
    }
}

fn rows(rows: Vec<ShipmentRow>) -> sqlx::Result<Vec<Shipment>> {
    rows.into_iter().map(Shipment::try_from).collect()
}

/// Inserts the shipment unless its order has one; true when inserted.
#[tracing::instrument(skip_all, fields(shipment_id = %s.id, order_id = %s.order_id))]
pub async fn insert_shipment(conn: &mut PgConnection, s: &Shipment) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO shipments (id, order_id, customer_id, quote_id, service, weight_grams, origin_cep,
                                destination_cep, address, status, attempts, next_attempt_at, cause_message_id,
                                correlation_id, traceparent, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $12, $13, $14, $11, $11)
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(s.id)
    .bind(s.order_id)
    .bind(s.customer_id)
    .bind(s.quote_id)
    .bind(s.service.as_str())
    .bind(s.weight_grams)
    .bind(&s.origin_cep)
    .bind(&s.destination_cep)
    .bind(Json(&s.address))
    .bind(s.status.as_str())
    .bind(s.created_at)
    .bind(s.cause_message_id)
    .bind(s.correlation_id)
    .bind(&s.traceparent)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The order's shipment, locked until the transaction ends.
pub async fn lock_shipment_of_order(conn: &mut PgConnection, order_id: Uuid) -> sqlx::Result<Option<Shipment>> {
    let sql = format!("SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE order_id = $1 FOR UPDATE");
    let row: Option<ShipmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(order_id).fetch_optional(conn).await?;
    row.map(Shipment::try_from).transpose()
}

/// Sets the status an order's cancellation leads to.
pub async fn update_cancelled(
    conn: &mut PgConnection,
    id: Uuid,
    status: ShipmentStatus,
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE shipments SET status = $2, cancelled_at = $3, updated_at = $3, next_attempt_at = $3
          WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims up to `limit` shipments due for booking: leased until
/// `now + lease` (another replica skips them until then) with one more
/// attempt counted. Locked rows are skipped, so replicas share the work.
pub async fn claim_due(
    conn: &mut PgConnection,
    limit: i64,
    now: OffsetDateTime,
    lease: std::time::Duration,
) -> sqlx::Result<Vec<Shipment>> {
    let sql = format!(
        "UPDATE shipments SET attempts = attempts + 1, leased_until = $2 + make_interval(secs => $3), updated_at = $2
          WHERE id IN (SELECT id FROM shipments
                        WHERE status = 'booking' AND next_attempt_at <= $2
                          AND (leased_until IS NULL OR leased_until <= $2)
                        ORDER BY next_attempt_at LIMIT $1
                        FOR UPDATE SKIP LOCKED)
         RETURNING {SHIPMENT_COLUMNS}"
    );
    let rs: Vec<ShipmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(limit)
        .bind(now)
        .bind(lease.as_secs_f64())
        .fetch_all(conn)
        .await?;
    rows(rs)
}

/// Records a booking: `booking` becomes `scheduled`; a shipment cancelled
/// while its booking was in flight becomes `cancel_requested`. `None` when
/// the shipment was neither (another replica recorded it first).
pub async fn record_booking(
    conn: &mut PgConnection,
    id: Uuid,
    booked: &Booked,
    now: OffsetDateTime,
) -> sqlx::Result<Option<Shipment>> {
    let sql = format!(
        "UPDATE shipments
            SET status = CASE status WHEN 'booking' THEN 'scheduled' ELSE 'cancel_requested' END,
                carrier_shipment_id = $2, tracking_code = $3, estimated_delivery = $4,
                scheduled_at = $5, updated_at = $5, leased_until = NULL, last_error = NULL
          WHERE id = $1 AND status IN ('booking', 'cancelled')
         RETURNING {SHIPMENT_COLUMNS}"
    );
    let row: Option<ShipmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(&booked.carrier_shipment_id)
        .bind(&booked.tracking_code)
        .bind(booked.estimated_delivery)
        .bind(now)
        .fetch_optional(conn)
        .await?;
    row.map(Shipment::try_from).transpose()
}

/// A failed booking attempt: try again at `next_attempt_at`.
pub async fn record_attempt_failed(
    conn: &mut PgConnection,
    id: Uuid,
    next_attempt_at: OffsetDateTime,
    error: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE shipments SET next_attempt_at = $2, last_error = $3, leased_until = NULL, updated_at = $4
          WHERE id = $1 AND status = 'booking'",
    )
    .bind(id)
    .bind(next_attempt_at)
    .bind(error)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The carrier refused the parcel for good.
pub async fn record_rejected(conn: &mut PgConnection, id: Uuid, error: &str, now: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE shipments SET status = 'rejected', last_error = $2, leased_until = NULL, updated_at = $3
          WHERE id = $1 AND status = 'booking'",
    )
    .bind(id)
    .bind(error)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn fetch_shipment(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Shipment>> {
    Ok(list_shipments(conn, Some(id), None, None, None, 1).await?.pop())
}

/// Shipments newest first, filtered by any of id, order, customer, and after `cursor`.
pub async fn list_shipments(
    conn: &mut PgConnection,
    id: Option<Uuid>,
    order_id: Option<Uuid>,
    customer_id: Option<Uuid>,
    cursor: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Shipment>> {
    let sql = format!(
        "SELECT {SHIPMENT_COLUMNS} FROM shipments
          WHERE ($1::uuid IS NULL OR id = $1)
            AND ($2::uuid IS NULL OR order_id = $2)
            AND ($3::uuid IS NULL OR customer_id = $3)
            AND ($4::uuid IS NULL OR id < $4)
          ORDER BY id DESC LIMIT $5"
    );
    let rs: Vec<ShipmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(order_id)
        .bind(customer_id)
        .bind(cursor)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows(rs)
}
