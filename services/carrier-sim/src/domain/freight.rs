//! Freight: price and days from the CEP regions (a CEP's first digit) and
//! the weight. Deterministic, so tests and demos can rely on the numbers;
//! SEDEX always costs more and arrives sooner than PAC.

use serde::Serialize;
use utoipa::ToSchema;

use super::Invalid;

/// The heaviest parcel accepted (30 kg, as Correios).
pub const MAX_WEIGHT_GRAMS: i64 = 30_000;

/// A Brazilian postal code: 8 digits (`01310-100` or `01310100`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cep([u8; 8]);

impl Cep {
    /// 8 digits after removing one optional hyphen.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let trimmed = raw.trim();
        let digits = match trimmed.matches('-').count() {
            0 => trimmed.to_string(),
            1 => trimmed.replacen('-', "", 1),
            _ => String::new(),
        };
        let bytes: [u8; 8] =
            digits
                .as_bytes()
                .try_into()
                .ok()
                .filter(|b: &[u8; 8]| b.iter().all(u8::is_ascii_digit))
                .ok_or_else(|| Invalid(format!("invalid CEP {raw:?}: expected 8 digits, e.g. 01310-100")))?;
        Ok(Cep(bytes))
    }

    /// The postal region: the first digit (0 is Greater São Paulo, 9 the South).
    pub fn region(self) -> u8 {
        self.0[0] - b'0'
    }

    /// The 8 digits.
    pub fn digits(self) -> String {
        self.0.iter().map(|&b| char::from(b)).collect()
    }
}

/// A parcel's weight: 1 g to 30 kg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weight(i64);

impl Weight {
    pub fn grams(g: i64) -> Result<Self, Invalid> {
        if !(1..=MAX_WEIGHT_GRAMS).contains(&g) {
            return Err(Invalid(format!("weight_grams must be between 1 and {MAX_WEIGHT_GRAMS}, got {g}")));
        }
        Ok(Weight(g))
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// Whole kilograms, rounded up (what the carrier charges by).
    fn billed_kg(self) -> i64 {
        (self.0 + 999) / 1000
    }
}

/// The carrier's services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ServiceLevel {
    /// Economy.
    Pac,
    /// Express.
    Sedex,
}

impl ServiceLevel {
    pub const ALL: [ServiceLevel; 2] = [ServiceLevel::Pac, ServiceLevel::Sedex];

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw.trim().to_ascii_uppercase().as_str() {
            "PAC" => Ok(ServiceLevel::Pac),
            "SEDEX" => Ok(ServiceLevel::Sedex),
            _ => Err(Invalid(format!("unknown service {raw:?}; use PAC or SEDEX"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceLevel::Pac => "PAC",
            ServiceLevel::Sedex => "SEDEX",
        }
    }
}

/// One way to send the parcel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct QuoteOption {
    pub service: ServiceLevel,
    pub price_cents: i64,
    /// Business days to deliver.
    pub days: u32,
}

/// The price and days of `service` between two CEPs.
pub fn option(service: ServiceLevel, origin: Cep, destination: Cep, weight: Weight) -> QuoteOption {
    let distance = i64::from(origin.region().abs_diff(destination.region()));
    let kg = weight.billed_kg();
    let pac_price = 1500 + 400 * distance + 300 * kg;
    let pac_days = 4 + distance as u32;
    match service {
        ServiceLevel::Pac => QuoteOption { service, price_cents: pac_price, days: pac_days },
        ServiceLevel::Sedex => QuoteOption {
            service,
            price_cents: pac_price + 1200 + 250 * distance + 200 * kg,
            days: 1 + distance as u32 / 3,
        },
    }
}

/// Every service's price and days, PAC first.
pub fn quote(origin: Cep, destination: Cep, weight: Weight) -> Vec<QuoteOption> {
    ServiceLevel::ALL.iter().map(|&s| option(s, origin, destination, weight)).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ceps_are_eight_digits_with_an_optional_hyphen() {
        assert_eq!(Cep::parse("01310-100").unwrap().digits(), "01310100");
        assert_eq!(Cep::parse("90010000").unwrap().region(), 9);
        for bad in ["0131-0100-", "1234567", "123456789", "abcdefgh", "01310--100", "", "01310 100"] {
            assert!(Cep::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weights_are_positive_and_at_most_30_kg() {
        assert!(Weight::grams(0).is_err());
        assert!(Weight::grams(-1).is_err());
        assert!(Weight::grams(30_001).is_err());
        assert_eq!(Weight::grams(1001).unwrap().billed_kg(), 2);
    }

    #[test]
    fn a_known_route_has_known_prices() {
        let sp = Cep::parse("01310-100").unwrap();
        let poa = Cep::parse("90010-000").unwrap();
        let w = Weight::grams(1500).unwrap();
        assert_eq!(
            quote(sp, poa, w),
            [
                QuoteOption { service: ServiceLevel::Pac, price_cents: 1500 + 3600 + 600, days: 13 },
                QuoteOption { service: ServiceLevel::Sedex, price_cents: 5700 + 1200 + 2250 + 400, days: 4 },
            ]
        );
    }

    proptest! {
        #[test]
        fn sedex_is_always_dearer_and_faster(o in 0u32..100_000_000, d in 0u32..100_000_000, g in 1i64..=30_000) {
            let (o, d) = (Cep::parse(&format!("{o:08}")).unwrap(), Cep::parse(&format!("{d:08}")).unwrap());
            let w = Weight::grams(g).unwrap();
            let [pac, sedex] = <[QuoteOption; 2]>::try_from(quote(o, d, w)).unwrap();
            prop_assert!(sedex.price_cents > pac.price_cents);
            prop_assert!(sedex.days < pac.days);
            prop_assert_eq!(quote(o, d, w), quote(d, o, w), "symmetric");
        }

        #[test]
        fn heavier_never_costs_less(o in 0u32..100_000_000, d in 0u32..100_000_000, g in 1i64..30_000) {
            let (o, d) = (Cep::parse(&format!("{o:08}")).unwrap(), Cep::parse(&format!("{d:08}")).unwrap());
            for s in ServiceLevel::ALL {
                let light = option(s, o, d, Weight::grams(g).unwrap());
                let heavy = option(s, o, d, Weight::grams(g + 1).unwrap());
                prop_assert!(heavy.price_cents >= light.price_cents);
            }
        }
    }
}
