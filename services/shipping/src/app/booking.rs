//! The booking worker: books `booking` shipments with the carrier.
//!
//! Every replica runs one. A sweep claims due shipments in a short
//! transaction (`FOR UPDATE SKIP LOCKED`, then a lease), calls the carrier
//! with no transaction open, and records the outcome in a new transaction:
//! booked → `scheduled` and `ShipmentScheduledV1` in the outbox, together; a
//! carrier failure → another attempt at a later `next_attempt_at`
//! ([`Backoff`], never a sleep), for as long as the outage lasts; a refusal
//! (4xx) → `rejected`. The carrier's idempotency key is per order, so a
//! retry after a lost answer, or two replicas after an expired lease, book
//! one shipment.

use std::time::Duration;

use contracts::Envelope;
use contracts::shipping::ShipmentScheduledV1;
use platform::messaging::outbox;
use platform::resilience::{Backoff, BreakerState};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::carrier::{Booking, Carrier, CarrierError};
use crate::domain::{CARRIER, Shipment, ShipmentStatus};
use crate::repo;

/// Shipments claimed per sweep transaction.
const BATCH: i64 = 20;

/// How long a claimed shipment is left to the replica that claimed it: far
/// longer than a carrier call, so it only matters when a replica dies.
const LEASE: Duration = Duration::from_secs(30);

/// The worker's dependencies and pace.
#[derive(Clone)]
pub struct Booker {
    pub db: PgPool,
    pub carrier: Carrier,
    /// Delay before attempt `n + 1` after `n` failures (its `attempts` is
    /// ignored: a carrier outage is waited out, never given up on).
    pub backoff: Backoff,
    /// How often to look for due shipments.
    pub interval: Duration,
}

impl Booker {
    /// Sweeps every `interval` until `stop`; a sweep in progress finishes first.
    pub async fn run(self, stop: CancellationToken) {
        tracing::info!(interval_ms = self.interval.as_millis() as u64, "booking worker started");
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.cancelled() => break,
            }
            loop {
                match self.book_due().await {
                    Ok(n) if n as i64 == BATCH && !stop.is_cancelled() => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "booking sweep failed");
                        break;
                    }
                }
            }
        }
        tracing::info!("booking worker stopped");
    }

    /// Books the shipments due now; returns how many were claimed.
    pub async fn book_due(&self) -> anyhow::Result<usize> {
        // While the breaker is open every call would be refused: leave the
        // shipments unclaimed until it lets a probe through.
        if self.carrier.breaker().state() == BreakerState::Open {
            return Ok(0);
        }
        let mut tx = self.db.begin().await?;
        let claimed = repo::claim_due(&mut tx, BATCH, kernel::time::now(), LEASE).await?;
        tx.commit().await?;
        let n = claimed.len();
        for shipment in claimed {
            let span = tracing::info_span!(
                "shipment booking",
                shipment_id = %shipment.id,
                order_id = %shipment.order_id,
                attempt = shipment.attempts
            );
            platform::telemetry::set_parent(&span, shipment.traceparent.as_deref());
            // One shipment's failure (a database hiccup) must not hold the
            // others: it is booked again once its lease runs out.
            if let Err(e) = self.book(shipment).instrument(span).await {
                tracing::warn!(error = format!("{e:#}"), "recording a booking failed; retried after the lease");
            }
        }
        Ok(n)
    }

    async fn book(&self, s: Shipment) -> anyhow::Result<()> {
        let booking = Booking {
            service: s.service.as_str(),
            origin_cep: s.origin_cep.clone(),
            destination_cep: s.destination_cep.clone(),
            weight_grams: s.weight_grams,
            reference: s.order_id.to_string(),
        };
        let result = self.carrier.book(&s.booking_key(), &booking).await;
        let now = kernel::time::now();
        let mut tx = self.db.begin().await?;
        match result {
            Ok(booked) => match repo::record_booking(&mut tx, s.id, &booked, now).await? {
                Some(done) if done.status == ShipmentStatus::Scheduled => {
                    outbox::enqueue(&mut tx, &scheduled_event(&done)?).await?;
                    metrics::counter!("shipping_bookings_total", "outcome" => "scheduled").increment(1);
                    tracing::info!(tracking_code = %booked.tracking_code, "shipment scheduled");
                }
                Some(_) => {
                    metrics::counter!("shipping_bookings_total", "outcome" => "cancel_requested").increment(1);
                    tracing::warn!(
                        tracking_code = %booked.tracking_code,
                        "shipment booked after its order was cancelled; cancel it with the carrier by hand"
                    );
                }
                None => tracing::info!("the booking was already recorded"),
            },
            Err(CarrierError::Refused { status, message }) => {
                let error = format!("the carrier refused the shipment ({status}): {message}");
                repo::record_rejected(&mut tx, s.id, &error, now).await?;
                metrics::counter!("shipping_bookings_total", "outcome" => "rejected").increment(1);
                tracing::error!(error, "shipment rejected by the carrier");
            }
            Err(e) => {
                let retry = u32::try_from(s.attempts.max(1) - 1).unwrap_or(0);
                let delay = self.backoff.delay(retry);
                let next = now + time::Duration::try_from(delay).unwrap_or(time::Duration::SECOND);
                repo::record_attempt_failed(&mut tx, s.id, next, &e.to_string(), now).await?;
                metrics::counter!("shipping_bookings_total", "outcome" => "retry").increment(1);
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "shipment booking failed, will retry");
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// `ShipmentScheduledV1` for a scheduled shipment, caused by the order's
/// confirmation (same correlation; the confirmation as causation).
fn scheduled_event(s: &Shipment) -> anyhow::Result<Envelope<ShipmentScheduledV1>> {
    let (Some(tracking_code), Some(estimated_delivery), Some(scheduled_at)) =
        (s.tracking_code.clone(), s.estimated_delivery, s.scheduled_at)
    else {
        anyhow::bail!("shipment {} is scheduled without its booking", s.id);
    };
    let payload = ShipmentScheduledV1 {
        shipment_id: s.id,
        order_id: s.order_id,
        customer_id: s.customer_id,
        carrier: CARRIER.to_string(),
        service: s.service.as_str().to_string(),
        tracking_code,
        estimated_delivery,
        scheduled_at,
    };
    Ok(Envelope { correlation_id: s.correlation_id, causation_id: Some(s.cause_message_id), ..Envelope::new(payload) })
}
