//! Money is integer cents plus a currency; no floating point anywhere.
//! Values parse (and deserialize) only when valid.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value is not valid money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneyError(pub String);

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MoneyError {}

/// An ISO 4217 currency the shops sell in (BRL by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Currency {
    #[default]
    Brl,
    Usd,
    Eur,
}

impl Currency {
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        match s {
            "BRL" => Ok(Currency::Brl),
            "USD" => Ok(Currency::Usd),
            "EUR" => Ok(Currency::Eur),
            other => Err(MoneyError(format!("unknown currency {other:?}; use BRL, USD or EUR"))),
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Currency::Brl => "BRL",
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
        }
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;

    fn try_from(s: String) -> Result<Self, MoneyError> {
        Currency::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.code().to_string()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A non-negative amount in cents, at most [`Cents::MAX`] (10^13: 100 billion
/// in units), so sums and products of realistic orders never overflow `i64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Cents(i64);

impl Cents {
    pub const MAX: i64 = 10_000_000_000_000;
    pub const ZERO: Cents = Cents(0);

    pub fn parse(n: i64) -> Result<Self, MoneyError> {
        if n < 0 {
            return Err(MoneyError("must not be negative".into()));
        }
        if n > Self::MAX {
            return Err(MoneyError(format!("must be at most {}", Self::MAX)));
        }
        Ok(Cents(n))
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// `self * n`, or `None` past [`Cents::MAX`] (or for a negative `n`).
    pub fn times(self, n: i64) -> Option<Cents> {
        self.0.checked_mul(n).filter(|v| (0..=Self::MAX).contains(v)).map(Cents)
    }

    /// `self + other`, or `None` past [`Cents::MAX`].
    pub fn plus(self, other: Cents) -> Option<Cents> {
        self.0.checked_add(other.0).filter(|v| *v <= Self::MAX).map(Cents)
    }
}

impl TryFrom<i64> for Cents {
    type Error = MoneyError;

    fn try_from(n: i64) -> Result<Self, MoneyError> {
        Cents::parse(n)
    }
}

impl From<Cents> for i64 {
    fn from(c: Cents) -> i64 {
        c.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn currencies_are_iso_codes_we_sell_in() {
        assert_eq!(Currency::parse("BRL").unwrap(), Currency::Brl);
        assert!(Currency::parse("brl").is_err());
        assert!(Currency::parse("XYZ").is_err());
        assert_eq!(serde_json::to_string(&Currency::Usd).unwrap(), "\"USD\"");
        assert!(serde_json::from_str::<Currency>("\"XYZ\"").is_err());
    }

    #[test]
    fn cents_deserialize_only_when_valid() {
        assert_eq!(serde_json::from_str::<Cents>("1990").unwrap().get(), 1990);
        assert!(serde_json::from_str::<Cents>("-1").is_err());
    }

    proptest! {
        #[test]
        fn cents_parse_accepts_exactly_the_valid_range(n in any::<i64>()) {
            prop_assert_eq!(Cents::parse(n).is_ok(), (0..=Cents::MAX).contains(&n));
        }

        #[test]
        fn multiplication_never_overflows_silently(c in 0..=Cents::MAX, n in 1..=100_000i64) {
            let cents = Cents::parse(c).unwrap();
            match cents.times(n) {
                Some(v) => prop_assert_eq!(i128::from(v.get()), i128::from(c) * i128::from(n)),
                None => prop_assert!(i128::from(c) * i128::from(n) > i128::from(Cents::MAX)),
            }
        }
    }
}
