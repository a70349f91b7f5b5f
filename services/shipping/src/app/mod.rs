//! Use cases: quotes (carrier first, fallback table when it cannot answer),
//! shipments created and cancelled by the order's events, and the reads.
//! The booking worker is in [`booking`].

pub mod booking;

use contracts::Envelope;
use contracts::orders::{OrderCancelledV1, OrderConfirmedV1};
use platform::ErrorKind;
use platform::http::{Caller, page};
use platform::messaging::HandlerError;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::carrier::CarrierError;
use crate::domain::{
    CarrierService, Cause, DEFAULT_WEIGHT_GRAMS, Quote, QuoteRequest, QuoteSource, Shipment, ShipmentStatus,
    fallback_rate,
};
use crate::{AppState, Settings, ShippingError, repo};

/// Prices `req` with the carrier, or from the fallback table when the
/// carrier is down, slow or its breaker open, and stores the quote.
#[tracing::instrument(skip_all, fields(destination_cep = %req.destination, service = req.service.as_str()))]
pub async fn create_quote(st: &AppState, req: QuoteRequest) -> Result<Quote, ShippingError> {
    let origin = &st.settings.origin;
    let asked = st.carrier.quote(origin.as_str(), req.destination.as_str(), req.weight_grams, req.service).await;
    let (rate, source) = match asked {
        Ok(rate) => (rate, QuoteSource::Carrier),
        Err(CarrierError::Refused { message, .. }) => return Err(ShippingError::CarrierRefused(message)),
        Err(e) => {
            if matches!(e, CarrierError::Open) {
                tracing::info!("carrier breaker open, quoting from the fallback table");
            } else {
                tracing::warn!(error = %e, "carrier quote failed, quoting from the fallback table");
            }
            (fallback_rate(&req.destination, req.service, req.weight_grams), QuoteSource::Fallback)
        }
    };
    let quote = Quote::new(origin, &req, rate, source, kernel::time::now(), st.settings.quote_ttl);
    let mut conn = st.db.acquire().await?;
    repo::insert_quote(&mut conn, &quote).await?;
    metrics::counter!("shipping_quotes_total", "source" => source.as_str()).increment(1);
    tracing::info!(quote_id = %quote.id, source = source.as_str(), price_cents = quote.price_cents, "quote given");
    Ok(quote)
}

/// A quote still valid; [`ShippingError::QuoteExpired`] past its time.
pub async fn get_quote(db: &PgPool, id: Uuid) -> Result<Quote, ShippingError> {
    let mut conn = db.acquire().await?;
    let quote = repo::fetch_quote(&mut conn, id).await?.ok_or(ShippingError::NotFound("quote"))?;
    if quote.is_expired(kernel::time::now()) {
        return Err(ShippingError::QuoteExpired(quote.expires_at));
    }
    Ok(quote)
}

/// Records the confirmed order's shipment, waiting for the booking worker
/// (no carrier call here: this runs inside the consumer's transaction).
#[tracing::instrument(skip_all, fields(order_id = %event.payload.order_id))]
pub async fn create_shipment(
    tx: &mut PgConnection,
    settings: &Settings,
    event: &Envelope<OrderConfirmedV1>,
) -> Result<Option<Shipment>, HandlerError> {
    let o = &event.payload;
    let Some(shipping) = &o.shipping else {
        tracing::info!("the order has nothing to ship");
        return Ok(None);
    };
    if repo::is_cancelled(tx, o.order_id).await? {
        tracing::info!("the order was cancelled before its confirmation arrived; nothing to ship");
        return Ok(None);
    }
    let (service, weight) = match repo::fetch_quote(tx, shipping.quote_id).await? {
        Some(q) => (q.service, q.weight_grams),
        None => {
            tracing::warn!(
                quote_id = %shipping.quote_id,
                default_weight_grams = DEFAULT_WEIGHT_GRAMS,
                "the order's quote is unknown; shipping PAC with the default weight"
            );
            (CarrierService::Pac, DEFAULT_WEIGHT_GRAMS)
        }
    };
    let cause = Cause {
        message_id: event.message_id,
        correlation_id: event.correlation_id,
        traceparent: platform::telemetry::current_traceparent().or_else(|| event.traceparent.clone()),
    };
    let shipment = Shipment::new(
        o.order_id,
        o.customer_id,
        Some(shipping.quote_id),
        service,
        weight,
        &settings.origin,
        shipping.address.clone(),
        cause,
        kernel::time::now(),
    )
    .map_err(|e| HandlerError::new(ErrorKind::Unprocessable, e))?;
    if !repo::insert_shipment(tx, &shipment).await? {
        tracing::info!("the order already has a shipment");
        return Ok(None);
    }
    tracing::info!(shipment_id = %shipment.id, service = service.as_str(), weight_grams = weight, "shipment waiting for booking");
    Ok(Some(shipment))
}

/// The order was cancelled: an unbooked shipment is cancelled, a booked one
/// flagged `cancel_requested` (the carrier API cannot cancel: an operator
/// does). A confirmation that arrives later ships nothing.
#[tracing::instrument(skip_all, fields(order_id = %event.order_id))]
pub async fn cancel_shipment(tx: &mut PgConnection, event: &OrderCancelledV1) -> Result<(), HandlerError> {
    let now = kernel::time::now();
    repo::insert_cancellation(tx, event.order_id, &event.reason, now).await?;
    let Some(shipment) = repo::lock_shipment_of_order(tx, event.order_id).await? else {
        tracing::info!("no shipment for the cancelled order");
        return Ok(());
    };
    let Some(next) = shipment.status.on_order_cancelled() else {
        tracing::info!(status = shipment.status.as_str(), "the shipment is already settled");
        return Ok(());
    };
    repo::update_cancelled(tx, shipment.id, next, now).await?;
    match next {
        ShipmentStatus::CancelRequested => tracing::warn!(
            shipment_id = %shipment.id,
            tracking_code = shipment.tracking_code.as_deref().unwrap_or_default(),
            "order cancelled after its shipment was booked; cancel it with the carrier by hand"
        ),
        _ => tracing::info!(shipment_id = %shipment.id, "shipment cancelled before booking"),
    }
    Ok(())
}

/// One shipment, if the caller may see it.
pub async fn get_shipment(db: &PgPool, caller: &Caller, id: Uuid) -> Result<Shipment, ShippingError> {
    caller.require_user()?;
    let mut conn = db.acquire().await?;
    match repo::fetch_shipment(&mut conn, id).await? {
        Some(s) if caller.may_access(s.customer_id) => Ok(s),
        _ => Err(ShippingError::NotFound("shipment")),
    }
}

/// The caller's shipments (anyone's for an admin), optionally of one order.
pub async fn list_shipments(
    db: &PgPool,
    caller: &Caller,
    order_id: Option<Uuid>,
    cursor: Option<Uuid>,
    limit: Option<i64>,
) -> Result<(Vec<Shipment>, Option<Uuid>), ShippingError> {
    let me = caller.require_user()?;
    let customer = if caller.is_admin() { None } else { Some(me) };
    let limit = page::limit(limit);
    let mut conn = db.acquire().await?;
    let items = repo::list_shipments(&mut conn, None, order_id, customer, cursor, limit + 1).await?;
    Ok(page::cut(items, limit, |s| s.id))
}
