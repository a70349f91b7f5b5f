//! A shipment: one per confirmed order, booked with the carrier by the
//! booking worker.
//!
//! ```text
//! booking ──booked──▶ scheduled ──order cancelled──▶ cancel_requested
//!    │ └──carrier refused the parcel──▶ rejected
//!    └──order cancelled──▶ cancelled (never booked)
//! ```
//! A `booking` shipment cancelled while its booking call was in flight ends
//! `cancel_requested` once the booking comes back.

use contracts::orders::AddressV1;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{CarrierService, Cep, DomainError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipmentStatus {
    /// Waiting for (or in) its booking with the carrier.
    Booking,
    /// The carrier accepted it: it has a tracking code.
    Scheduled,
    /// The order was cancelled before the shipment was booked.
    Cancelled,
    /// The order was cancelled after the booking: the carrier's shipment
    /// must be cancelled by hand (the carrier API has no cancellation).
    CancelRequested,
    /// The carrier refused the parcel (for example, a CEP it does not serve).
    Rejected,
}

impl ShipmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ShipmentStatus::Booking => "booking",
            ShipmentStatus::Scheduled => "scheduled",
            ShipmentStatus::Cancelled => "cancelled",
            ShipmentStatus::CancelRequested => "cancel_requested",
            ShipmentStatus::Rejected => "rejected",
        }
    }

    pub fn parse(raw: &str) -> Result<ShipmentStatus, DomainError> {
        Ok(match raw {
            "booking" => ShipmentStatus::Booking,
            "scheduled" => ShipmentStatus::Scheduled,
            "cancelled" => ShipmentStatus::Cancelled,
            "cancel_requested" => ShipmentStatus::CancelRequested,
            "rejected" => ShipmentStatus::Rejected,
            other => return Err(DomainError(format!("unknown shipment status {other:?}"))),
        })
    }

    /// The status after the order was cancelled, or `None` when it stays.
    pub fn on_order_cancelled(self) -> Option<ShipmentStatus> {
        match self {
            ShipmentStatus::Booking => Some(ShipmentStatus::Cancelled),
            ShipmentStatus::Scheduled => Some(ShipmentStatus::CancelRequested),
            ShipmentStatus::Cancelled | ShipmentStatus::CancelRequested | ShipmentStatus::Rejected => None,
        }
    }
}

/// What the carrier answered to a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booked {
    pub carrier_shipment_id: String,
    pub tracking_code: String,
    pub estimated_delivery: Date,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Shipment {
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub quote_id: Option<Uuid>,
    pub service: CarrierService,
    pub weight_grams: i64,
    pub origin_cep: String,
    pub destination_cep: String,
    pub address: AddressV1,
    pub status: ShipmentStatus,
    pub carrier_shipment_id: Option<String>,
    pub tracking_code: Option<String>,
    pub estimated_delivery: Option<Date>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub cause_message_id: Uuid,
    pub correlation_id: Uuid,
    pub traceparent: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub scheduled_at: Option<OffsetDateTime>,
    pub cancelled_at: Option<OffsetDateTime>,
}

/// Where the shipment's envelope came from: kept so the event published
/// once it is booked is caused by the order's confirmation.
#[derive(Debug, Clone)]
pub struct Cause {
    pub message_id: Uuid,
    pub correlation_id: Uuid,
    pub traceparent: Option<String>,
}

impl Shipment {
    /// A new shipment waiting to be booked.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        order_id: Uuid,
        customer_id: Uuid,
        quote_id: Option<Uuid>,
        service: CarrierService,
        weight_grams: i64,
        origin: &Cep,
        address: AddressV1,
        cause: Cause,
        now: OffsetDateTime,
    ) -> Result<Shipment, DomainError> {
        let destination = Cep::parse(&address.cep).map_err(|e| DomainError(format!("shipping.address.cep: {e}")))?;
        let now = kernel::time::stored(now);
        Ok(Shipment {
            id: Uuid::now_v7(),
            order_id,
            customer_id,
            quote_id,
            service,
            weight_grams,
            origin_cep: origin.as_str().to_string(),
            destination_cep: destination.as_str().to_string(),
            address,
            status: ShipmentStatus::Booking,
            carrier_shipment_id: None,
            tracking_code: None,
            estimated_delivery: None,
            attempts: 0,
            last_error: None,
            cause_message_id: cause.message_id,
            correlation_id: cause.correlation_id,
            traceparent: cause.traceparent,
            created_at: now,
            updated_at: now,
            scheduled_at: None,
            cancelled_at: None,
        })
    }

    /// The carrier's idempotency key for booking this order's shipment: the
    /// same on every attempt and every replica, so the carrier books once.
    pub fn booking_key(&self) -> String {
        format!("order-{}-shipment", self.order_id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_order_cancels_an_unbooked_shipment_and_flags_a_booked_one() {
        assert_eq!(ShipmentStatus::Booking.on_order_cancelled(), Some(ShipmentStatus::Cancelled));
        assert_eq!(ShipmentStatus::Scheduled.on_order_cancelled(), Some(ShipmentStatus::CancelRequested));
        assert_eq!(ShipmentStatus::Cancelled.on_order_cancelled(), None);
        assert_eq!(ShipmentStatus::CancelRequested.on_order_cancelled(), None);
        for s in ["booking", "scheduled", "cancelled", "cancel_requested", "rejected"] {
            assert_eq!(ShipmentStatus::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn a_new_shipment_waits_for_booking_with_a_key_per_order() {
        let order_id = Uuid::now_v7();
        let cause = Cause { message_id: Uuid::now_v7(), correlation_id: Uuid::now_v7(), traceparent: None };
        let s = Shipment::new(
            order_id,
            Uuid::now_v7(),
            None,
            CarrierService::Pac,
            1_000,
            &Cep::parse("01310100").unwrap(),
            AddressV1::example(),
            cause,
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        assert_eq!(s.status, ShipmentStatus::Booking);
        assert_eq!(s.booking_key(), format!("order-{order_id}-shipment"));
        let mut bad = AddressV1::example();
        bad.cep = "123".into();
        let cause = Cause { message_id: Uuid::now_v7(), correlation_id: Uuid::now_v7(), traceparent: None };
        let err = Shipment::new(
            order_id,
            Uuid::now_v7(),
            None,
            CarrierService::Pac,
            1_000,
            &Cep::parse("01310100").unwrap(),
            bad,
            cause,
            OffsetDateTime::now_utc(),
        );
        assert!(err.is_err());
    }
}
