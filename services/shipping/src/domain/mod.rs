//! Shipping's pure types and rules: postal codes, carrier services, parcel
//! weight, quotes, the fallback rate table and the shipment's states. No I/O.

mod rates;
mod shipment;

use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

pub use rates::{Rate, fallback_rate};
pub use shipment::{Booked, Cause, Shipment, ShipmentStatus};

/// Heaviest parcel accepted (the Correios limit for PAC and SEDEX).
pub const MAX_WEIGHT_GRAMS: i64 = 30_000;

/// Weight booked when an order's quote is unknown here.
pub const DEFAULT_WEIGHT_GRAMS: i64 = 1_000;

/// The carrier's name in `ShipmentScheduledV1`.
pub const CARRIER: &str = "correios";

/// A Brazilian postal code (CEP): eight digits, kept without the hyphen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cep(String);

impl Cep {
    /// Accepts `01310100` or `01310-100` (one hyphen, after the fifth
    /// digit, where a CEP has it); rejects all zeros.
    pub fn parse(raw: &str) -> Result<Cep, DomainError> {
        let raw = raw.trim();
        let digits = match raw.split_once('-') {
            Some((a, b)) if a.len() == 5 && !b.contains('-') => format!("{a}{b}"),
            Some(_) => return Err(DomainError("a CEP is written 01310-100 or 01310100".into())),
            None => raw.to_string(),
        };
        if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError("a CEP has eight digits, e.g. 01310-100".into()));
        }
        if digits.bytes().all(|b| b == b'0') {
            return Err(DomainError("00000-000 is not a CEP".into()));
        }
        Ok(Cep(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first digit: the postal region (0-1 São Paulo, 2 Rio de Janeiro
    /// and Espírito Santo, 3 Minas Gerais, ... 9 Rio Grande do Sul).
    pub fn region(&self) -> u8 {
        self.0.as_bytes().first().map(|b| b - b'0').unwrap_or(0)
    }
}

impl fmt::Display for Cep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The carrier's delivery services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CarrierService {
    /// Economy.
    Pac,
    /// Express.
    Sedex,
}

impl CarrierService {
    pub fn parse(raw: &str) -> Result<CarrierService, DomainError> {
        match raw {
            "PAC" => Ok(CarrierService::Pac),
            "SEDEX" => Ok(CarrierService::Sedex),
            _ => Err(DomainError(format!("unknown service {raw:?}; use PAC or SEDEX"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CarrierService::Pac => "PAC",
            CarrierService::Sedex => "SEDEX",
        }
    }
}

/// Where a quote's price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteSource {
    /// The carrier answered.
    Carrier,
    /// The carrier was down, slow or its breaker open: the fallback table.
    Fallback,
}

impl QuoteSource {
    pub fn as_str(self) -> &'static str {
        match self {
            QuoteSource::Carrier => "carrier",
            QuoteSource::Fallback => "fallback",
        }
    }

    pub fn parse(raw: &str) -> Result<QuoteSource, DomainError> {
        match raw {
            "carrier" => Ok(QuoteSource::Carrier),
            "fallback" => Ok(QuoteSource::Fallback),
            _ => Err(DomainError(format!("unknown quote source {raw:?}"))),
        }
    }
}

/// A rule was broken; the message says which, for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DomainError(pub String);

/// One line of a quote request.
#[derive(Debug, Clone, Copy)]
pub struct Parcel {
    pub quantity: i64,
    pub weight_grams: i64,
}

/// A quantity must be positive.
pub fn check_quantity(q: i64) -> Result<i64, DomainError> {
    if q > 0 { Ok(q) } else { Err(DomainError("must be a whole number greater than 0".into())) }
}

/// A weight must be positive and at most [`MAX_WEIGHT_GRAMS`].
pub fn check_weight(w: i64) -> Result<i64, DomainError> {
    if w <= 0 {
        Err(DomainError("must be a whole number of grams greater than 0".into()))
    } else if w > MAX_WEIGHT_GRAMS {
        Err(DomainError(format!("must be at most {MAX_WEIGHT_GRAMS} grams")))
    } else {
        Ok(w)
    }
}

/// The parcel's total weight: at least one item, at most [`MAX_WEIGHT_GRAMS`].
pub fn total_weight(items: &[Parcel]) -> Result<i64, DomainError> {
    if items.is_empty() {
        return Err(DomainError("at least one item is needed".into()));
    }
    let total =
        items.iter().try_fold(0i64, |acc, p| p.quantity.checked_mul(p.weight_grams).and_then(|w| acc.checked_add(w)));
    match total {
        Some(t) if t <= MAX_WEIGHT_GRAMS => Ok(t),
        _ => Err(DomainError(format!("the parcel weighs more than {MAX_WEIGHT_GRAMS} grams"))),
    }
}

/// What a quote is asked for, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteRequest {
    pub destination: Cep,
    pub service: CarrierService,
    pub weight_grams: i64,
}

/// A price offered for a parcel, valid until `expires_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub id: Uuid,
    pub origin_cep: String,
    pub destination_cep: String,
    pub service: CarrierService,
    pub price_cents: i64,
    pub currency: String,
    pub delivery_days: i32,
    pub weight_grams: i64,
    pub source: QuoteSource,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl Quote {
    /// A new quote for `req` from `origin`, at `rate`, valid for `ttl` from `now`.
    pub fn new(
        origin: &Cep,
        req: &QuoteRequest,
        rate: Rate,
        source: QuoteSource,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Quote {
        let now = kernel::time::stored(now);
        let ttl = time::Duration::try_from(ttl).unwrap_or(time::Duration::MINUTE);
        Quote {
            id: Uuid::now_v7(),
            origin_cep: origin.as_str().to_string(),
            destination_cep: req.destination.as_str().to_string(),
            service: req.service,
            price_cents: rate.price_cents,
            currency: kernel::money::Currency::Brl.code().to_string(),
            delivery_days: rate.days,
            weight_grams: req.weight_grams,
            source,
            created_at: now,
            expires_at: kernel::time::stored(now + ttl.max(time::Duration::MILLISECOND)),
        }
    }

    /// Past its validity: the customer must ask again.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_cep_is_eight_digits_with_or_without_one_hyphen() {
        assert_eq!(Cep::parse("01310-100").unwrap().as_str(), "01310100");
        assert_eq!(Cep::parse("01310100").unwrap().as_str(), "01310100");
        assert_eq!(Cep::parse(" 90010-000 ").unwrap().region(), 9);
        for bad in
            ["", "0131010", "013101000", "01310--100", "0131-0-100", "0131-0100", "01310-10a", "00000-000", "00000000"]
        {
            assert!(Cep::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn services_are_pac_and_sedex() {
        assert_eq!(CarrierService::parse("PAC").unwrap(), CarrierService::Pac);
        assert_eq!(CarrierService::parse("SEDEX").unwrap().as_str(), "SEDEX");
        assert!(CarrierService::parse("sedex").is_err());
    }

    #[test]
    fn the_parcel_weighs_what_its_items_weigh() {
        let items = [Parcel { quantity: 2, weight_grams: 300 }, Parcel { quantity: 1, weight_grams: 150 }];
        assert_eq!(total_weight(&items).unwrap(), 750);
        assert!(total_weight(&[]).is_err());
        assert!(total_weight(&[Parcel { quantity: 31, weight_grams: 1000 }]).is_err());
        assert!(total_weight(&[Parcel { quantity: i64::MAX, weight_grams: 2 }]).is_err());
        assert!(check_quantity(0).is_err());
        assert!(check_weight(-1).is_err());
        assert!(check_weight(30_001).is_err());
    }

    #[test]
    fn a_quote_expires_after_its_time_to_live() {
        let req = QuoteRequest {
            destination: Cep::parse("20040-002").unwrap(),
            service: CarrierService::Sedex,
            weight_grams: 500,
        };
        let now = OffsetDateTime::now_utc();
        let rate = fallback_rate(&req.destination, req.service, req.weight_grams);
        let q = Quote::new(
            &Cep::parse("01310100").unwrap(),
            &req,
            rate,
            QuoteSource::Fallback,
            now,
            Duration::from_secs(1800),
        );
        assert_eq!(q.currency, "BRL");
        assert!(!q.is_expired(now));
        assert!(q.is_expired(now + time::Duration::minutes(30)));
    }

    proptest! {
        #[test]
        fn any_eight_digit_cep_but_zeros_parses_and_keeps_its_digits(n in 1u32..100_000_000) {
            let digits = format!("{n:08}");
            let hyphenated = format!("{}-{}", &digits[..5], &digits[5..]);
            prop_assert_eq!(Cep::parse(&digits).unwrap(), Cep(digits.clone()));
            prop_assert_eq!(Cep::parse(&hyphenated).unwrap(), Cep(digits));
        }

        #[test]
        fn cep_parsing_never_panics(s in "\\PC{0,12}") {
            let _ = Cep::parse(&s);
        }
    }
}
