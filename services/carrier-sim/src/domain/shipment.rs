//! Shipments: a booked parcel with its tracking code and delivery estimate.

use serde::Serialize;
use time::{Date, OffsetDateTime, Weekday};
use utoipa::ToSchema;

use super::freight::{self, Cep, ServiceLevel, Weight};
use super::{Invalid, tracking};

/// Longest `reference` accepted.
pub const MAX_REF_LEN: usize = 255;

/// A valid booking request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShipment {
    pub service: ServiceLevel,
    pub origin: Cep,
    pub destination: Cep,
    pub weight: Weight,
    pub reference: String,
}

impl NewShipment {
    pub fn parse(
        service: &str,
        origin_cep: &str,
        destination_cep: &str,
        weight_grams: i64,
        reference: &str,
    ) -> Result<Self, Invalid> {
        let reference = reference.trim();
        if reference.is_empty() || reference.len() > MAX_REF_LEN {
            return Err(Invalid(format!("reference must be 1 to {MAX_REF_LEN} characters")));
        }
        Ok(NewShipment {
            service: ServiceLevel::parse(service)?,
            origin: Cep::parse(origin_cep)?,
            destination: Cep::parse(destination_cep)?,
            weight: Weight::grams(weight_grams)?,
            reference: reference.to_string(),
        })
    }

    /// What makes two bookings the same for one `Idempotency-Key`.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.service.as_str(),
            self.origin.digits(),
            self.destination.digits(),
            self.weight.get(),
            self.reference
        )
    }
}

/// A booked shipment, as the carrier's API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Shipment {
    #[schema(example = "sh_0193a0c2d6f87c3e9b1d2a4f5e6d7c8b")]
    pub id: String,
    #[schema(example = "SS473124829BR")]
    pub tracking_code: String,
    pub service: ServiceLevel,
    /// `YYYY-MM-DD`, counting business days from the booking.
    #[schema(value_type = String, format = Date)]
    pub estimated_delivery: String,
    pub reference: String,
    pub origin_cep: String,
    pub destination_cep: String,
    pub weight_grams: i64,
    /// The freight charged (the quote's price).
    pub price_cents: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl Shipment {
    /// Books `req` at `now` as parcel number `serial`.
    pub fn book(id: String, serial: u32, req: &NewShipment, now: OffsetDateTime) -> Shipment {
        let option = freight::option(req.service, req.origin, req.destination, req.weight);
        Shipment {
            id,
            tracking_code: tracking::tracking_code(req.service, serial),
            service: req.service,
            estimated_delivery: add_business_days(now.date(), option.days).to_string(),
            reference: req.reference.clone(),
            origin_cep: req.origin.digits(),
            destination_cep: req.destination.digits(),
            weight_grams: req.weight.get(),
            price_cents: option.price_cents,
            created_at: now,
        }
    }
}

/// `date` plus `days` business days (Saturdays and Sundays skipped).
pub fn add_business_days(mut date: Date, days: u32) -> Date {
    let mut left = days;
    while left > 0 {
        date = date.next_day().unwrap_or(date);
        if !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
            left -= 1;
        }
    }
    date
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn business_days_skip_weekends() {
        // 2026-11-20 is a Friday.
        assert_eq!(add_business_days(date!(2026 - 11 - 20), 1), date!(2026 - 11 - 23));
        assert_eq!(add_business_days(date!(2026 - 11 - 20), 0), date!(2026 - 11 - 20));
        assert_eq!(add_business_days(date!(2026 - 11 - 23), 5), date!(2026 - 11 - 30));
    }

    #[test]
    fn a_booking_carries_its_code_estimate_and_price() {
        let req = NewShipment::parse("sedex", "01310-100", "01310-200", 800, "order-1").unwrap();
        let s = Shipment::book("sh_1".into(), 47_312_482, &req, datetime!(2026-11-20 12:00 UTC));
        assert_eq!(s.tracking_code, "SS473124829BR");
        assert_eq!(s.estimated_delivery, "2026-11-23");
        assert_eq!(s.price_cents, 1500 + 300 + 1200 + 200);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["service"], "SEDEX");
        assert_eq!(v["origin_cep"], "01310100");
    }

    #[test]
    fn bad_bookings_are_refused() {
        assert!(NewShipment::parse("CARTA", "01310100", "01310100", 1, "r").is_err());
        assert!(NewShipment::parse("PAC", "0131010", "01310100", 1, "r").is_err());
        assert!(NewShipment::parse("PAC", "01310100", "01310100", 0, "r").is_err());
        assert!(NewShipment::parse("PAC", "01310100", "01310100", 1, "  ").is_err());
    }
}
